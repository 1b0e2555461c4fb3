"""Scenes of the shapes world: one or two objects on a plain background, sampled from a seed.

A scene is pure data (no pixels): the attributes the caption names plus small continuous
jitter (offset, size, shade) so that one caption still has many renderings and the model
must learn the concept, not a single image. Concept labels are strings ``"kind=value"``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")
COLORS = {  # RGB prototypes; saturated and far from every background so segmentation is easy
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "purple": (150, 60, 205),
    "orange": (245, 140, 30),
}
SIZES = ("small", "large")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
BACKGROUNDS = {"dark": (25, 25, 32), "gray": (128, 128, 128), "light": (236, 236, 230)}
# The texture world's surface patterns (`textures=True`): dark cells of a 4-pixel lattice fixed to
# the image, so every 8x8-pixel token of an object shows the whole pattern. Unlike a colour (a
# point on a smooth paint plane) or a shape (a property of the whole object), a texture is a
# categorical concept each token carries by itself. "plain" is the default world's surface.
TEXTURES = ("plain", "striped", "checked", "dotted")
TEXTURE_CELL = 4  # pixels; a token (8 px) holds one period in each direction
TEXTURE_DARK = 0.6  # dark cells: the colour times this (>= 60 RGB from every background, so objects stay one component)

# Concept vocabulary, in a fixed order shared by labels, the annotator and token masks.
CONCEPT_KINDS = ("color", "shape", "size", "position", "background")


def concept_kind(concepts):
    """ "color=red" -> "color", for a pandas Series of concept names."""
    return concepts.astype(str).str.split("=").str[0]


CONCEPTS: list[str] = (
    [f"color={c}" for c in COLORS]
    + [f"shape={s}" for s in SHAPES]
    + [f"size={s}" for s in SIZES]
    + [f"position={p}" for p in POSITIONS]
    + [f"background={b}" for b in BACKGROUNDS]
)
OBJECT_KINDS = ("color", "shape", "size", "position")
TEXTURE_CONCEPTS: list[str] = [f"texture={t}" for t in TEXTURES]


def object_concepts(o) -> list[str]:
    """The concepts of an object `o` (a drawn `Obj` or an annotator's detection: anything with
    colour, shape, size, position and texture); texture only in the texture world (not None)."""
    out = [f"color={o.color}", f"shape={o.shape}", f"size={o.size}", f"position={o.position}"]
    return out if o.texture is None else out + [f"texture={o.texture}"]


def world_concepts(textures: bool = False) -> list[str]:
    """The concept vocabulary of the default world, or of the texture world (textures last)."""
    return CONCEPTS + TEXTURE_CONCEPTS if textures else list(CONCEPTS)


# Geometry as fractions of the image side: quadrant centres and half-extents per size.
# Large objects (half-extent 0.21 + jitter <= 0.245) stay inside their quadrant, so objects never touch.
POSITION_CENTRES = {
    "top-left": (0.25, 0.25),
    "top-right": (0.75, 0.25),
    "bottom-left": (0.25, 0.75),
    "bottom-right": (0.75, 0.75),
}
SIZE_RADIUS = {"small": 0.14, "large": 0.21}
JITTER_OFFSET = 0.025  # centre offset, fraction of the side
JITTER_RADIUS = 0.01  # half-extent jitter
JITTER_SHADE = 12  # per-channel colour jitter (0..255)
# Bounding-box extent (fraction of the side) separating the sizes: the largest small object
# (triangle, 2.1 x 0.15) spans 0.315, the smallest large one (square, 1.7 x 0.20) 0.34.
SIZE_EXTENT = 0.33


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    size: str
    position: str
    dx: float = 0.0  # centre offset (fraction of side)
    dy: float = 0.0
    dr: float = 0.0  # half-extent jitter (fraction of side)
    shade: tuple[int, int, int] = (0, 0, 0)
    texture: str | None = None  # None: the default world (no texture named or drawn)

    def concepts(self) -> list[str]:
        return object_concepts(self)


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: str
    bg_shade: tuple[int, int, int] = (0, 0, 0)

    def concepts(self) -> list[str]:
        out: list[str] = []
        for o in self.objects:
            out += [c for c in o.concepts() if c not in out]
        return out + [f"background={self.background}"]

    def to_json(self) -> str:
        d = asdict(self)
        for o in d["objects"]:  # the default world's scenes keep their texture-free form
            if o["texture"] is None:
                del o["texture"]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> Scene:
        d = json.loads(s)
        objs = tuple(Obj(**{**o, "shade": tuple(o["shade"])}) for o in d["objects"])
        return cls(objects=objs, background=d["background"], bg_shade=tuple(d["bg_shade"]))

    def key(self) -> tuple:
        """The discrete content (what a caption can say), without jitter."""
        return (self.background,) + tuple(
            (o.size, o.color, o.shape, o.position) + ((o.texture,) if o.texture is not None else ())
            for o in self.objects
        )


P_TWO = 0.35  # share of two-object scenes in prompt tables (training may use more: world.two_object_fraction)


def sample_scene(rng: np.random.Generator, p_two: float = P_TWO, textures: bool = False) -> Scene:
    """One random scene. Two objects get distinct positions (one per quadrant). `textures`: each
    object also draws a texture (after its other draws, so the default world's stream is unchanged)."""
    n = 2 if rng.random() < p_two else 1
    positions = rng.choice(len(POSITIONS), size=n, replace=False)
    objs = []
    for pos in positions:
        objs.append(
            Obj(
                shape=SHAPES[rng.integers(len(SHAPES))],
                color=list(COLORS)[rng.integers(len(COLORS))],
                size=SIZES[rng.integers(len(SIZES))],
                position=POSITIONS[int(pos)],
                dx=float(rng.uniform(-JITTER_OFFSET, JITTER_OFFSET)),
                dy=float(rng.uniform(-JITTER_OFFSET, JITTER_OFFSET)),
                dr=float(rng.uniform(-JITTER_RADIUS, JITTER_RADIUS)),
                shade=tuple(int(v) for v in rng.integers(-JITTER_SHADE, JITTER_SHADE + 1, size=3)),
                texture=TEXTURES[rng.integers(len(TEXTURES))] if textures else None,
            )
        )
    # Reading order (top-left first) so that captions and objects line up deterministically.
    objs.sort(key=lambda o: POSITIONS.index(o.position))
    bg = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    bg_shade = tuple(int(v) for v in rng.integers(-6, 7, size=3))
    return Scene(objects=tuple(objs), background=bg, bg_shade=bg_shade)
