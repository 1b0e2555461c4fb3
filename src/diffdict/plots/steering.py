"""Steering figures: success against strength, and a sample grid.

Input of `plot_steering_success`: the steering metrics table (`steering.metrics`), one row per
steered cell: ``strength, shift, change_elsewhere`` (+ ``dict``/``site`` when several are
collected, ``feature``). Left: concept shift toward the explanation (mean, 95% CI over
features x prompts); right: how much else changed. One line per dictionary (per feature when
there is a single dictionary).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..atomic import atomic_path
from .style import apply_style, dict_order, dict_palette, kind_of, message_figure, require, save_figure


def plot_steering_success(df: pd.DataFrame, out: str | os.PathLike):
    require(df, ["strength", "shift", "change_elsewhere"], "steering success", allow_empty=True)
    apply_style()
    data = df.dropna(subset=["shift"])
    if "graded_against" in data.columns:  # the wrong-explanation null is in steering_summary.csv
        data = data[data["graded_against"].fillna("own") == "own"]
    if data.empty:
        why = (
            "no feature was steered (the interp stage found no eligible feature)"
            if df.empty
            else "no steered feature's explanation names a concept the grader knows"
        )
        return message_figure(out, "Steering success", f"Nothing to plot: {why}.")
    if "dict" in data.columns and data["dict"].nunique() > 1:
        km = kind_of(data)
        hue, order, palette = "dict", dict_order(km), dict_palette(km)
    else:
        hue, order = "feature", sorted(data["feature"].astype(int).unique())
        palette = dict(zip(order, sns.color_palette("colorblind", len(order))))
        data = data.assign(feature=data["feature"].astype(int))
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.4, 3.5), sharex=True)
    kw = dict(
        x="strength", hue=hue, hue_order=order, palette=palette, marker="o", errorbar=("ci", 95), n_boot=500, seed=0
    )
    sns.lineplot(data=data, y="shift", ax=a, **kw)
    sns.lineplot(data=data, y="change_elsewhere", ax=b, legend=False, **kw)
    a.axhline(0, color="0.4", lw=0.8)
    a.set(
        xlabel="strength (x mean token norm)",
        ylabel="concept shift (steered - unsteered)",
        title="Toward the explanation",
    )
    b.set(xlabel="strength (x mean token norm)", ylabel="change elsewhere", title="Everything else")
    a.legend(title=hue, fontsize="small")
    return save_figure(fig, out)


def copy_grid(src: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Publish a steering grid PNG as a figure (atomic copy; the grid is already a picture)."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"steering grid {src} does not exist")
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    return Path(out)
