"""Prompts for vision-language explainers/judges and robust parsing of their answers.

Messages are built in a neutral form (role + parts; a part is text or PNG bytes) that each
backend renders into its own format (OpenAI data URLs, transformers chat templates).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from .base import Example

EXPLAIN_SYSTEM = (
    "You interpret features of a text-to-image diffusion model. A feature is a direction in the "
    "model's internal activations; it activates on some image regions."
)

EXPLAIN_TEXT = (
    "Here are the {n} images on which the feature activates most strongly. A blue overlay marks "
    "where it activates: more opaque blue means stronger activation; the colour bar on the right "
    "of each image gives the scale. What does the feature detect (an object, part, colour, "
    "texture, shape, style, position, ...)? Answer with one short phrase of at most 15 words and "
    "nothing else."
)

JUDGE_TEXT = (
    'A feature of an image model was explained as: "{explanation}".\n'
    "How likely is it that this feature activates on the image shown, i.e. that the image "
    "contains what the explanation describes? Answer only with JSON of the form "
    '{{"score": s}} where s is a number from 0 (certainly not) to 1 (certainly yes).'
)

JUDGE_TEXT_HEATMAP = JUDGE_TEXT.replace(
    "on the image shown", "on the image shown (a blue overlay marks where it activates, if anywhere)"
)


def explain_messages(top: Sequence[Example]) -> list[dict]:
    parts: list = [{"text": EXPLAIN_TEXT.format(n=len(top))}]
    for i, ex in enumerate(top):
        parts += [{"text": f"Image {i + 1}:"}, {"png": ex.overlay_png}]
    return [{"role": "system", "parts": [{"text": EXPLAIN_SYSTEM}]}, {"role": "user", "parts": parts}]


def judge_messages(explanation: str, example: Example, heatmap: bool) -> list[dict]:
    text = (JUDGE_TEXT_HEATMAP if heatmap else JUDGE_TEXT).format(explanation=explanation)
    png = example.overlay_png if heatmap else example.plain_png
    return [{"role": "user", "parts": [{"png": png}, {"text": text}]}]


class ParseError(ValueError):
    pass


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(%?)")


def parse_explanation(text: str | None, max_chars: int = 300) -> str:
    """First non-empty line, without a leading label or quotes."""
    if not text or not text.strip():
        raise ParseError("empty explanation")
    line = next(ln for ln in _FENCE.sub("", text.strip()).splitlines() if ln.strip()).strip()
    line = re.sub(r"^(explanation|answer|feature)\s*:\s*", "", line, flags=re.I).strip().strip("\"'`*").strip()
    if not line:
        raise ParseError(f"no explanation in {text[:80]!r}")
    return line[:max_chars]


def parse_score(text: str | None) -> float:
    """A score in [0, 1] from JSON ({"score": s}), a bare number, a percentage, or yes/no.

    Anything ambiguous (several different numbers, out of range, no number) raises ParseError."""
    if text is None or not text.strip():
        raise ParseError("empty answer")
    s = _FENCE.sub("", text.strip()).strip()
    for cand in [s, *re.findall(r"\{[^{}]*\}", s)]:
        try:
            obj = json.loads(cand)
        except ValueError:
            continue
        if isinstance(obj, dict):
            obj = next((obj[k] for k in ("score", "probability", "rating") if k in obj), None)
        if isinstance(obj, (int, float)) and not isinstance(obj, bool):
            return _check(float(obj), text)
        if isinstance(obj, str):
            s = obj
            break
    low = s.lower().strip(" .!")
    if low in ("yes", "no"):
        return 1.0 if low == "yes" else 0.0
    nums = {float(m.group(0).rstrip("%")) / (100 if m.group(1) else 1) for m in _NUMBER.finditer(s)}
    if len(nums) != 1:
        raise ParseError(f"{'no' if not nums else 'ambiguous'} score in {text[:80]!r}")
    return _check(nums.pop(), text)


def _check(v: float, text: str) -> float:
    if not 0.0 <= v <= 1.0:
        raise ParseError(f"score {v} outside [0, 1] in {text[:80]!r}")
    return v
