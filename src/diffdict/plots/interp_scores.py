"""Interpretability scores per method, with hierarchical bootstrap confidence intervals.

Input: one row per scored feature: ``site, dict, kind, feature`` and score columns
(``balanced_accuracy``; in the shapes world also ``token_f1`` from the token-level judge), e.g.
`collect.collect_tables` over ``interp/{site}/{dict}/{explainer}/scores.parquet`` with
``levels=("explainer",)``. One panel per score (and explainer). Bars are the mean over training
runs of each run's mean; whiskers are the 95% hierarchical bootstrap CI of
`diffdict.interp.scoring.compare_to_baseline` (runs, then features), the same numbers as
``tables/interp_summary.csv``; the dotted line is the image question's chance level (0.5).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..interp.scoring import compare_to_baseline
from .style import apply_style, dict_order, dict_palette, kind_of, message_figure, require, save_figure, site_order

SCORES = {"balanced_accuracy": "balanced accuracy (image)", "token_f1": "F1 (token judge)"}


def plot_interp_scores(df: pd.DataFrame, out: str | os.PathLike, scores=tuple(SCORES)):
    require(df, ["site", "dict"], "interpretability scores", allow_empty=True)
    if df.empty:  # a valid run whose dictionaries offered no explainable feature: say so, in the figure
        why = "no feature of any dictionary was eligible to be explained and judged"
        return message_figure(out, "Interpretability", f"Nothing to plot: {why} (interp_runs.csv counts why).")
    scores = [s for s in scores if s in df.columns and df[s].notna().any()]
    if not scores:
        require(df, ["balanced_accuracy"], "interpretability scores")
    apply_style()
    km = kind_of(df)
    summary = compare_to_baseline(df, scores, seed=0)  # the summary table's settings, so its numbers
    explainers = sorted(summary["explainer"].unique()) if "explainer" in summary.columns else [None]
    panels = [(s, e) for e in explainers for s in scores]
    sites = site_order(df["site"])
    dicts = [d for d in dict_order(km) if d in set(summary["dict"])]
    palette = dict_palette(km)
    width = 0.8 / max(len(dicts), 1)
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(0.6 + 3.2 * len(panels), 3.6))
    runs = summary.drop_duplicates("dict").set_index("dict")["replicates"]
    for ax, (score, explainer) in zip(axes[0], panels):
        sub = summary[(summary["metric"] == score) & ((summary["explainer"] == explainer) if explainer else True)]
        for j, d in enumerate(dicts):
            rows = sub[sub["dict"] == d].set_index("site").reindex(sites)
            x = np.arange(len(sites)) + (j - (len(dicts) - 1) / 2) * width
            err = np.vstack([rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]])
            label = f"{d} ({runs[d]} runs)" if runs.get(d, 1) > 1 else d
            ax.bar(x, rows["mean"], width * 0.95, color=palette.get(d), label=label)
            ax.errorbar(x, rows["mean"], yerr=err, fmt="none", ecolor="0.2", capsize=2, lw=1)
        if score == "balanced_accuracy":
            ax.axhline(0.5, color="0.4", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(sites)), sites, rotation=30)
        ax.set(
            ylim=(0, 1),
            xlabel="site",
            ylabel=SCORES.get(score, score),
            title=f"{explainer}" if explainer and len(explainers) > 1 else None,
        )
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="dictionary")
    fig.suptitle("Explanation scores: mean over runs, 95% CI over runs then features", weight="bold")
    return save_figure(fig, out)
