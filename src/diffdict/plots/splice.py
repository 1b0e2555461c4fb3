"""Spliced generation: how much of the model's behaviour survives replacing a site's
activations by their reconstruction.

Input: one row per (site, dict) (and optionally per ``metric``): ``site, dict, kind,
recovered``, where ``recovered`` = 1 - effect(spliced) / effect(ablated) for an image-distance
effect against the unspliced generation (1: as good as the original, 0: as bad as ablating the
site to its mean). With a ``metric`` column, one panel per metric.
"""

from __future__ import annotations

import os

import pandas as pd
import seaborn as sns

from .style import apply_style, dict_order, dict_palette, kind_of, require, save_figure, site_order


def plot_splice_recovery(df: pd.DataFrame, out: str | os.PathLike, value: str = "recovered"):
    require(df, ["site", "dict", value], "spliced generation")
    apply_style()
    km = kind_of(df)
    col = "metric" if "metric" in df.columns and df["metric"].nunique() > 1 else None
    g = sns.catplot(
        data=df,
        kind="bar",
        x="site",
        y=value,
        hue="dict",
        col=col,
        order=site_order(df["site"]),
        hue_order=dict_order(km),
        palette=dict_palette(km),
        height=3.4,
        aspect=1.3,
        errorbar=("ci", 95),
        seed=0,
    )
    for ax in g.axes.flat:
        ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.tick_params(axis="x", rotation=30)
    g.set_axis_labels("site", "effect recovered (1 = original)")
    g.figure.suptitle("Spliced generation", y=1.02, weight="bold")
    return save_figure(g.figure, out, tight_layout=False)
