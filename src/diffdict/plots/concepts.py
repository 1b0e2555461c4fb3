"""Concept recovery on the shapes world: how well each dictionary's best feature detects each
planted concept.

Input: one row per (dict, concept) (optionally per ``site``): ``dict, concept`` and the metric
column (``auroc`` by default, or ``iou``), the best single feature's score for that concept.
Heatmap of concept x dictionary; several sites give one panel each.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .style import apply_style, dict_order, kind_of, require, save_figure, site_order


def plot_concept_recovery(df: pd.DataFrame, out: str | os.PathLike, metric: str = "auroc"):
    require(df, ["dict", "concept", metric], "concept recovery")
    apply_style()
    data = df.assign(site=df["site"] if "site" in df.columns else "")
    sites = site_order(data["site"])
    cols = dict_order(kind_of(data))
    concepts = sorted(data["concept"].unique())
    vmin = 0.5 if metric == "auroc" else 0.0  # AUROC below chance is no better than chance
    fig, axes = plt.subplots(1, len(sites), squeeze=False,
                             figsize=(1.2 + 0.9 * len(cols) * len(sites) + 1.0, 1.2 + 0.32 * len(concepts)))
    for i, (ax, site) in enumerate(zip(axes[0], sites)):
        grid = (data[data["site"] == site].pivot_table(index="concept", columns="dict", values=metric, aggfunc="max")
                .reindex(index=concepts, columns=cols))
        sns.heatmap(grid, ax=ax, vmin=vmin, vmax=1.0, cmap="viridis", annot=True, fmt=".2f",
                    annot_kws={"size": 7}, cbar=i == len(sites) - 1, cbar_kws={"label": metric.upper()},
                    linewidths=0.5, linecolor="white")
        ax.set(title=site or None, xlabel="dictionary", ylabel="concept" if i == 0 else "")
        if i:
            ax.set_yticklabels([])
    fig.suptitle(f"Concept recovery (best feature {metric.upper()})", weight="bold")
    return save_figure(fig, out)
