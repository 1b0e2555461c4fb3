"""The explainer/judge interface shared by every backend.

A backend explains a feature from examples (images with heatmaps) and judges one image
against an explanation. Failures (malformed answers, exhausted retries) are *returned* as
`ok=False` records with an error string, so they are counted in the results, never dropped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, TypeVar

import numpy as np

from .. import render


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # nominal cost of the responses (cache hits included)
    requests: int = 0  # HTTP/generation calls actually made (retries included)
    cached: int = 0  # answers served from the cache
    COLUMNS: ClassVar[tuple[str, ...]] = ("tokens", "cost", "requests", "cached")  # what result tables keep

    def __add__(self, o: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.astuple(), o.astuple())))

    def astuple(self):
        return (self.prompt_tokens, self.completion_tokens, self.cost, self.requests, self.cached)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def row(self) -> dict:
        """Its `COLUMNS` as a result table's row."""
        return {c: getattr(self, c) for c in self.COLUMNS}


@dataclass(eq=False)
class Example:
    """One image shown to an explainer or judge. ``heat`` [gh, gw] is None for images shown
    without a heatmap; ``vmax`` is the card's shared colour scale."""

    prompt_id: int
    image: np.ndarray | None
    heat: np.ndarray | None = None
    vmax: float = 1.0
    size: int = 256

    @cached_property
    def overlay_png(self) -> bytes:
        if self.heat is None:
            return self.plain_png
        return render.png_bytes(render.overlay(self.image, self.heat, self.vmax, self.size))

    @cached_property
    def plain_png(self) -> bytes:
        return render.png_bytes(render.resize(self.image, self.size))


@dataclass
class Explanation:
    feature: int
    text: str
    concepts: tuple[str, ...] = ()  # structured form, when the backend has one (annotation)
    ok: bool = True
    error: str | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass
class Judgement:
    score: float | None  # in [0, 1]; None on failure
    ok: bool = True
    error: str | None = None
    usage: Usage = field(default_factory=Usage)


class Backend(ABC):
    """Subclasses set ``name`` and implement `explain` and `judge`.

    ``judge_heatmap``: whether the judge sees the heatmap. Default False: negatives have no
    activation, so a heatmap (or its absence) would give the answer away."""

    name: ClassVar[str]
    max_concurrency: int = 1
    judge_heatmap: bool = False

    @abstractmethod
    def explain(self, feature: int, top: Sequence[Example], negatives: Sequence[Example] = ()) -> Explanation:
        """Explain a feature from its top examples (with heatmaps); ``negatives`` are
        non-activating images of the explanation subset (used by grounded backends)."""

    @abstractmethod
    def judge(self, explanation: Explanation, example: Example) -> Judgement:
        """Score in [0, 1] how well `example` matches `explanation`."""

    def explain_many(self, tasks: Sequence[tuple[int, Sequence[Example], Sequence[Example]]]) -> list[Explanation]:
        return pmap(lambda t: self.explain(*t), tasks, self.max_concurrency, f"{self.name}: explain")

    def judge_many(self, items: Sequence[tuple[Explanation, Example]]) -> list[Judgement]:
        return pmap(lambda t: self.judge(*t), items, self.max_concurrency, f"{self.name}: judge")


T = TypeVar("T")


def pmap(fn: Callable[..., T], items: Sequence, max_workers: int, desc: str | None = None) -> list[T]:
    """Ordered map with at most `max_workers` calls in flight (bounded concurrency), with progress."""
    from tqdm.auto import tqdm

    bar = dict(total=len(items), desc=desc, leave=False, disable=True if desc is None else None)  # None: tty only
    if max_workers <= 1 or len(items) <= 1:
        return [fn(x) for x in tqdm(items, **bar)]
    with ThreadPoolExecutor(max_workers=max_workers) as ex:
        return list(tqdm(ex.map(fn, items), **bar))
