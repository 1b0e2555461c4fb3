"""Prompt adherence of a toy pipeline and the sample-grid figure.

An image adheres when the annotator finds exactly the prompt's objects: the multiset of
(colour, shape) pairs detected equals the prompt's (a missing, extra or wrong object fails).
Position, size and background adherence are reported beside it (and, in the texture world,
``texture_ok``: the multiset of (colour, texture) pairs).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .scene import Scene


def adherence_table(annotator, images: np.ndarray, scenes: list[Scene]) -> pd.DataFrame:
    """One row per image: ``adheres`` (colour and shape of every object, no extras) and the
    position / size / background / count checks (plus ``texture_ok`` for texture-world scenes)."""
    dets, bgs = annotator.detect(images)
    rows = []
    for s, ds, b in zip(scenes, dets, bgs):
        want = Counter((o.color, o.shape) for o in s.objects)
        got = Counter((d.color, d.shape) for d in ds)
        full_want = Counter((o.color, o.shape, o.position, o.size) for o in s.objects)
        full_got = Counter((d.color, d.shape, d.position, d.size) for d in ds)
        rows.append(
            {
                "n_objects": len(s.objects),
                "n_detected": len(ds),
                "adheres": want == got,
                "color_ok": Counter(o.color for o in s.objects) == Counter(d.color for d in ds),
                "shape_ok": Counter(o.shape for o in s.objects) == Counter(d.shape for d in ds),
                "position_ok": sorted(o.position for o in s.objects) == sorted(d.position for d in ds),
                "all_attributes_ok": full_want == full_got and b == s.background,
                "background_ok": b == s.background,
                "annotation": "; ".join(f"{d.size} {d.color} {d.shape} @{d.position}" for d in ds) + f" | {b}",
            }
        )
        if any(o.texture is not None for o in s.objects):  # the texture world
            rows[-1]["texture_ok"] = Counter((o.color, o.texture) for o in s.objects) == Counter(
                (d.color, d.texture) for d in ds
            )
    return pd.DataFrame(rows)


def sample_grid_figure(
    images: np.ndarray,
    prompts: list[str],
    out_path: str | Path | None = None,
    ncols: int = 6,
    marks: list[bool] | None = None,
    title: str | None = None,
):
    """Grid of generated images with their prompts underneath (wrapped); optional ✓/✗ marks
    (e.g. adherence) colour the caption green/red. Saved atomically as PNG when `out_path`."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (img, p) in enumerate(zip(images, prompts)):
        ax = axes.flat[i]
        ax.imshow(img, interpolation="nearest")
        color = "black" if marks is None else ("tab:green" if marks[i] else "tab:red")
        # a text below the axes, not a title: a title's box ignores va and overlaps the image
        caption = "\n".join(textwrap.wrap(p, 26))
        ax.text(0.5, -0.03, caption, transform=ax.transAxes, fontsize=6.5, color=color, ha="center", va="top")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if out_path is not None:
        from ..atomic import atomic_path

        with atomic_path(out_path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    return fig


def shard_samples_figure(annotator, shard, prompts: pd.DataFrame, out_path: str | Path, n: int = 18):
    """The first `n` images of a generation shard beside their prompts (`prompts`: the split's
    prompt table), marked by adherence, with the adherence rate in the title."""
    from ..model import read_shard

    t, _ = read_shard(shard, names=("prompt_id", "images"))
    rows = prompts.set_index("prompt_id").loc[t["prompt_id"].numpy()[:n]]
    images = t["images"].numpy()[:n]
    adheres = adherence_table(annotator, images, [Scene.from_json(s) for s in rows["scene"]])["adheres"]
    return sample_grid_figure(
        images,
        rows["prompt"].tolist(),
        out_path,
        marks=adheres.tolist(),
        title=f"Toy model samples (test prompts): colour and shape right in {float(adheres.mean()):.0%}",
    )
