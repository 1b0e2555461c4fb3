"""Caption grammar: every caption names all of a scene's discrete attributes, with phrasing
variety (synonyms, word order). Naming everything keeps the concept labels of a prompt true of
any image the prompt should produce.

Captions are lower-case words separated by single spaces, no punctuation, at most
``MAX_WORDS`` words, so they fit the default ``max_sequence_length: 16`` with the T5 EOS token.
"""

from __future__ import annotations

import numpy as np

from .scene import BACKGROUNDS, COLORS, POSITIONS, SHAPES, TEXTURES, Obj, Scene

MAX_WORDS = 15

SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
POSITION_WORDS = {p: (p, p.replace("top", "upper").replace("bottom", "lower")) for p in POSITIONS}
SHAPE_WORDS = {s: (s,) for s in SHAPES}
COLOR_WORDS = {c: (c,) for c in COLORS}

# One-object templates: {o} = "<size> <color> <shape>", {p} = position word, {b} = background.
ONE = (
    "a {o} at the {p} on a {b} background",
    "a {o} in the {p} corner on a {b} background",
    "{b} background with a {o} at the {p}",
    "a {o} at the {p} against a {b} backdrop",
    "the {p} shows a {o} on {b}",
    "picture of a {o} in the {p} with a {b} background",
)
# Two-object templates (objects in reading order); kept short for the 16-token budget.
TWO = (
    "a {o1} at {p1} and a {o2} at {p2} on {b}",
    "{b} background with {o1} at {p1} and {o2} at {p2}",
    "{o1} at {p1} and {o2} at {p2} on a {b} background",
)
# The texture world's two-object fallback: its object phrases are a word longer each, and this
# order fits them into MAX_WORDS (drawn only when the drawn template is too long).
COMPACT_TWO = "{o1} at {p1} and {o2} at {p2} on {b}"
FUNCTION_WORDS = "a the at in on and with of shows picture corner background backdrop against".split()


def _obj_words(o: Obj, rng: np.random.Generator) -> tuple[str, str]:
    size = SIZE_WORDS[o.size][rng.integers(len(SIZE_WORDS[o.size]))]
    pos = POSITION_WORDS[o.position][rng.integers(2)]
    texture = "" if o.texture is None else f"{o.texture} "
    return f"{size} {texture}{COLOR_WORDS[o.color][0]} {SHAPE_WORDS[o.shape][0]}", pos


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption for `scene`, with phrasing drawn from `rng`."""
    b = scene.background
    if len(scene.objects) == 1:
        o, p = _obj_words(scene.objects[0], rng)
        text = ONE[rng.integers(len(ONE))].format(o=o, p=p, b=b)
    else:
        (o1, p1), (o2, p2) = (_obj_words(o, rng) for o in scene.objects)
        text = TWO[rng.integers(len(TWO))].format(o1=o1, p1=p1, o2=o2, p2=p2, b=b)
        if len(text.split()) > MAX_WORDS:
            text = COMPACT_TWO.format(o1=o1, p1=p1, o2=o2, p2=p2, b=b)
    assert len(text.split()) <= MAX_WORDS, text
    return text


def vocabulary(textures: bool = False) -> list[str]:
    """Every word the grammar can produce, sorted (the tokenizers' word list); `textures`: the
    texture world's (the default world's words plus the texture names)."""
    words = set(FUNCTION_WORDS) | (set(TEXTURES) if textures else set())
    for group in (SIZE_WORDS, POSITION_WORDS, SHAPE_WORDS, COLOR_WORDS):
        for v in group.values():
            words.update(v)
    words.update(BACKGROUNDS)
    for t in ONE + TWO:
        words.update(w for w in t.split() if not w.startswith("{"))
    return sorted(words)
