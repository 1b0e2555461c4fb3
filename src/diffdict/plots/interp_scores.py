"""Interpretability scores per method, with bootstrap confidence intervals.

Input: one row per scored feature: ``site, dict, kind, feature`` and the score column
(``balanced_accuracy`` by default; ``auroc`` works too), e.g. `collect.collect_tables` over
``interp/{site}/{dict}/{explainer}/scores.parquet`` with ``levels=("explainer",)``. With several
explainers, one panel each. Bars are means over features; whiskers are 95% bootstrap CIs over
features (seeded); the dotted line is chance (0.5). With a ``replicate`` column (several
training runs pooled under one dictionary name) the legend gives the number of runs.
"""

from __future__ import annotations

import os

import pandas as pd
import seaborn as sns

from .style import apply_style, dict_order, dict_palette, kind_of, require, save_figure, site_order


def plot_interp_scores(df: pd.DataFrame, out: str | os.PathLike, score: str = "balanced_accuracy"):
    require(df, ["site", "dict", score], "interpretability scores")
    apply_style()
    data = df.dropna(subset=[score])
    km = kind_of(data)
    col = "explainer" if "explainer" in data.columns and data["explainer"].nunique() > 1 else None
    g = sns.catplot(data=data, kind="bar", x="site", y=score, hue="dict", col=col,
                    order=site_order(data["site"]), hue_order=dict_order(km), palette=dict_palette(km),
                    errorbar=("ci", 95), n_boot=1000, seed=0, capsize=0.1, height=3.4, aspect=1.3)
    for ax in g.axes.flat:
        ax.axhline(0.5, color="0.4", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=30)
    g.set_axis_labels("site", score.replace("_", " "))
    # features scored per site and dictionary (and explainer: each scores the same features)
    per = data.groupby(["site", "dict", *([col] if col else [])]).size()
    counts = per.groupby(level="dict").agg(["min", "max"])
    runs = data.groupby("dict")["replicate"].nunique() if "replicate" in data.columns else {}
    g.figure.suptitle("Explanation scores, mean and 95% CI over features", y=1.03, weight="bold")
    for text in g.legend.texts:
        name = text.get_text()
        lo, hi = counts.loc[name] if name in counts.index else (0, 0)
        n = f"{lo}" if lo == hi else f"{lo}-{hi}"
        text.set_text(f"{name} ({n}, {runs[name]} runs)" if runs.get(name, 1) > 1 else f"{name} ({n})")
    # the longer labels need a legend laid out again, beside the axes rather than over them
    right = max(ax.get_position().x1 for ax in g.axes.flat)
    sns.move_legend(g, "center left", bbox_to_anchor=(right + 0.02, 0.5), title="dict (features per site)")
    return save_figure(g.figure, out, tight_layout=False)
