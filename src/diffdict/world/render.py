"""Rasterise a scene: RGB uint8 image plus one boolean mask per object.

No anti-aliasing on purpose: every pixel belongs to exactly one object or to the background,
so masks and pixels agree exactly (a property the tests check).
"""

from __future__ import annotations

import numpy as np

from .scene import (
    BACKGROUNDS,
    COLORS,
    POSITION_CENTRES,
    SHAPES,
    SIZE_RADIUS,
    TEXTURE_CELL,
    TEXTURE_DARK,
    TEXTURES,
    Obj,
    Scene,
)


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Boolean [size, size] mask of a shape centred at (cx, cy) with half-extent r (pixels)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        s = 0.85 * r  # similar area to the circle
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if shape == "triangle":  # apex up; base at cy + r
        t = (dy + r) / (2 * r)  # 0 at apex, 1 at base
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r * 1.05)
    if shape == "cross":  # plus sign with arms a third of the extent wide
        w = r / 2.8
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape '{shape}'; valid: {', '.join(SHAPES)}")


def texture_cells(texture: str | None, size: int) -> np.ndarray:
    """Boolean [size, size]: the dark cells of `texture`'s lattice (fixed to the image, so the
    pattern's phase is the same in every object and every token). None / plain: no dark cells."""
    ys, xs = np.mgrid[0:size, 0:size] // TEXTURE_CELL % 2
    if texture in (None, "plain"):
        return np.zeros((size, size), bool)
    if texture == "striped":  # horizontal stripes
        return ys == 1
    if texture == "checked":
        return ys != xs
    if texture == "dotted":  # one dark cell in four
        return (ys == 1) & (xs == 1)
    raise ValueError(f"unknown texture '{texture}'; valid: {', '.join(TEXTURES)}")


def object_geometry(o: Obj, size: int) -> tuple[float, float, float]:
    fx, fy = POSITION_CENTRES[o.position]
    return (fx + o.dx) * size, (fy + o.dy) * size, (SIZE_RADIUS[o.size] + o.dr) * size


def _clip(rgb, shade) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.int64) + np.asarray(shade, np.int64), 0, 255).astype(np.uint8)


def render(scene: Scene, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``image`` uint8 [size, size, 3] and ``masks`` bool [n_objects, size, size]."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = _clip(BACKGROUNDS[scene.background], scene.bg_shade)
    masks = np.zeros((len(scene.objects), size, size), bool)
    for i, o in enumerate(scene.objects):
        cx, cy, r = object_geometry(o, size)
        m = shape_mask(o.shape, cx, cy, r, size)
        masks[:i] &= ~m  # later objects are on top (objects never overlap in sampled scenes)
        masks[i] = m
        img[m] = _clip(COLORS[o.color], o.shade)
        if o.texture not in (None, "plain"):
            dark = m & texture_cells(o.texture, size)
            img[dark] = _clip(np.round(TEXTURE_DARK * np.asarray(COLORS[o.color])), o.shade)
    return img, masks


def render_batch(scenes, size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    out = [render(s, size) for s in scenes]
    return np.stack([o[0] for o in out]), [o[1] for o in out]
