"""The registry of dictionary kinds: everything the rest of the project knows about a kind.

A kind is one module that defines its settings dataclass (every hyperparameter with its default
and doc, see `diffdict.settings`) and a `fit(settings, inputs) -> Dictionary` function, and
registers a `Kind` at import. The config checker, the generated schema, the CLI and the workflow
read this registry, which imports every module of this package once (`kinds`), so adding a kind
is adding its module (and its test); a kind defined elsewhere calls `register` at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class FitInputs:
    """What a kind's `fit` gets besides its settings (typed; the kind says which it `needs`)."""

    batches: Callable[[int], Iterable]  # epoch -> batches of the site's training activations
    d_model: int
    site: str = "?"
    device: torch.device = torch.device("cpu")
    checkpoint_dir: Path | None = None
    log_path: Path | None = None
    w_out: torch.Tensor | None = None  # `needs` "w_out": the MLP's ff.net[2].weight [d_resid, mlp_hidden]
    progress: bool = True
    stop_after: int | None = None  # SAE training hooks for tests and tools
    callback: Callable[[int, dict], None] | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    settings: type  # a dataclass of `settings.setting` fields
    fit: Callable[[Any, FitInputs], Any]
    doc: str
    places: tuple[str, ...] = ("resid",)  # site places it applies to; the first is the default
    needs: tuple[str, ...] = ()  # FitInputs fields beyond the activations (loaded by the CLI)
    trained: bool = True  # False: nothing is learned (a log row records the build)
    order: int = 100  # position in listings (schema, error messages); ties by name
    sae: bool = False  # a TopK SAE once trained: exported to peer formats, checked against ground truth

    @property
    def defaults(self) -> dict:
        from ..settings import defaults

        return defaults(self.settings)

    @property
    def seeded(self) -> bool:
        """Has a seed, so replicates differ."""
        return "seed" in self.defaults


REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in REGISTRY and REGISTRY[kind.name] != kind:
        raise ValueError(f"dictionary kind '{kind.name}' is registered twice")
    REGISTRY[kind.name] = kind
    return kind


def import_kind_modules() -> None:
    """Import every module of this package, so that each kind module registers its kind (and its
    `Dictionary` class, `base.REGISTRY`, which `load_dictionary` reads)."""
    import importlib
    import pkgutil

    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")


def kinds() -> dict[str, Kind]:
    """Every registered kind, by `Kind.order` then name."""
    import_kind_modules()
    return {k.name: k for k in sorted(REGISTRY.values(), key=lambda k: (k.order, k.name))}


def sae_kinds() -> tuple[str, ...]:
    """The kinds whose trained dictionary is a TopK SAE (`Kind.sae`)."""
    return tuple(name for name, k in kinds().items() if k.sae)


def get_kind(name: str) -> Kind:
    ks = kinds()
    if name not in ks:
        raise ValueError(f"unknown dictionary kind '{name}'; valid kinds: {list(ks)}")
    return ks[name]
