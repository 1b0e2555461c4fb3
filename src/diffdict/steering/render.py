"""Lay steering images out as labelled PNG grids (Pillow: pixel-exact, no plotting backend).

Rows are (feature, prompt) pairs grouped by feature, columns are strengths in ascending order;
images are upscaled by an integer factor (nearest neighbour) so tiny toy images stay legible.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path
from ..filenames import feature_file

GAP = 4  # pixels between cells
GROUP_GAP = 12  # extra pixels between features
LABEL_W = 220  # width of the row-label column
HEADER_H = 22
MIN_CELL = 96  # upscale cells to at least this many pixels


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _fmt_strength(s: float) -> str:
    return "unsteered" if s == 0 else f"{s:+g}"


def grid_image(images: np.ndarray, table: pd.DataFrame, title: str | None = None) -> Image.Image:
    """Compose the grid for the cells of `table` (a `SteeringRun.table` or a subset)."""
    if table.empty:
        raise ValueError("no steering cells to draw")
    strengths = sorted(table["strength"].unique())
    features = list(dict.fromkeys(table["feature"]))
    prompts = list(dict.fromkeys(table["prompt_id"]))
    h, w = images.shape[1:3]
    scale = max(1, int(np.ceil(MIN_CELL / max(h, w))))
    ch, cw = h * scale, w * scale
    top = HEADER_H + (HEADER_H if title else 0)
    n_rows = len(features) * len(prompts)
    height = top + n_rows * (ch + GAP) + (len(features) - 1) * GROUP_GAP
    width = LABEL_W + len(strengths) * (cw + GAP)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    if title:
        draw.text((4, 4), title, fill="black", font=font)
    for j, s in enumerate(strengths):
        draw.text((LABEL_W + j * (cw + GAP) + 2, top - HEADER_H + 4), _fmt_strength(s), fill="black", font=font)
    cell = {(r.feature, r.prompt_id, r.strength): r for r in table.itertuples()}
    y = top
    for f in features:
        for pi, p in enumerate(prompts):
            any_row = next((cell[(f, p, s)] for s in strengths if (f, p, s) in cell), None)
            if any_row is None:
                continue
            label = []
            if pi == 0:
                expl = f": {any_row.explanation}" if any_row.explanation else ""
                label += textwrap.wrap(f"feature {f}{expl}", 34)[:2]
            label += textwrap.wrap(f"prompt {p}: {any_row.prompt}", 34)[:3]
            draw.multiline_text((4, y + 2), "\n".join(label), fill="black", font=font, spacing=2)
            for j, s in enumerate(strengths):
                r = cell.get((f, p, s))
                if r is None:
                    continue
                tile = Image.fromarray(images[r.image]).resize((cw, ch), Image.NEAREST)
                canvas.paste(tile, (LABEL_W + j * (cw + GAP), y))
            y += ch + GAP
        y += GROUP_GAP
    return canvas


def _save_png(img: Image.Image, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def render_grid(images: np.ndarray, table: pd.DataFrame, out_png: str | os.PathLike, title: str | None = None) -> None:
    """Write the whole grid (all features) to `out_png`, atomically."""
    _save_png(grid_image(images, table, title), out_png)


def render_message(message: str, out_png: str | os.PathLike, title: str | None = None) -> None:
    """A grid-sized PNG that says why there is no grid (a run with nothing to steer)."""
    lines = ([title] if title else []) + textwrap.wrap(message, 70)
    canvas = Image.new("RGB", (LABEL_W + 3 * (MIN_CELL + GAP), HEADER_H * (len(lines) + 1)), "white")
    ImageDraw.Draw(canvas).multiline_text((4, 4), "\n".join(lines), fill="black", font=_font(), spacing=6)
    _save_png(canvas, out_png)


def feature_row_name(feature: int) -> str:
    return feature_file(feature)


def render_feature_rows(images: np.ndarray, table: pd.DataFrame, out_dir: str | os.PathLike) -> None:
    """One PNG per feature (its prompts x strengths) in `out_dir`, for the feature browser.
    The directory is replaced atomically as a whole."""
    with atomic_path(out_dir, is_dir=True) as tmp:
        for f, sub in table.groupby("feature", sort=False):
            grid_image(images, sub).save(Path(tmp) / feature_row_name(f), format="PNG")
