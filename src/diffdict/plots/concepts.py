"""Concept recovery on the shapes world: each dictionary's best feature per planted concept,
chosen on one half of the interp images and scored on the other, beside random directions and
the linear-probe ceiling.

Input: ``tables/concepts.csv`` — one row per (site, dict, [replicate,] concept) with
``token_auroc`` and, optionally, ``probe_token_auroc`` (the same for every dictionary at a site).
One panel per site and question: mean held-out token AUROC per concept group (colour, shape,
size, position, background) for each dictionary (error bars: spread over training runs), the
probe as a grey bar behind, chance at 0.5. Top row: against all tokens; bottom row
(``kind_token_auroc``): only among the tokens of the concept's kind, where a generic
"fires on objects" feature scores 0.5.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..world.scene import concept_kind
from .style import KIND_LABELS, apply_style, dict_order, dict_palette, kind_of, require, save_figure, site_order

GROUP_ORDER = ("color", "texture", "shape", "background", "size", "position")  # texture: the texture world


QUESTIONS = {"token_auroc": "all tokens", "kind_token_auroc": "within the concept's kind\n(hard negatives)"}


def plot_concept_recovery(df: pd.DataFrame, out: str | os.PathLike):
    metrics = [m for m in QUESTIONS if m in df.columns]
    if not metrics:
        require(df, ["token_auroc"], "concept recovery")
    require(df, ["dict", "concept"], "concept recovery")
    apply_style()
    data = df.assign(
        site=df["site"] if "site" in df.columns else "",
        replicate=df["replicate"] if "replicate" in df.columns else 0,
        group=concept_kind(df["concept"]),
    )
    groups = [g for g in GROUP_ORDER if g in set(data["group"])] + sorted(set(data["group"]) - set(GROUP_ORDER))
    sites = site_order(data["site"])
    kinds = kind_of(data)
    order = dict_order(kinds)
    palette = dict_palette(kinds)
    fig, axes = plt.subplots(
        len(metrics),
        len(sites),
        squeeze=False,
        sharey=True,
        figsize=(0.8 + (0.55 + 0.22 * len(order)) * len(groups) * len(sites), 0.6 + 3.0 * len(metrics)),
    )
    handles, labels = [], []
    for r, metric in enumerate(metrics):
        # one point per training run and group: the error bar spans the runs
        runs = data.groupby(["site", "dict", "replicate", "group"], as_index=False)[metric].mean()
        for i, site in enumerate(sites):
            ax = axes[r][i]
            if f"probe_{metric}" in data.columns:
                probe = (
                    data[data["site"] == site]
                    .drop_duplicates("concept")
                    .groupby("group")[f"probe_{metric}"]
                    .mean()
                    .reindex(groups)
                )
                ax.bar(
                    range(len(groups)),
                    probe.to_numpy(),
                    width=0.85,
                    color="0.88",
                    edgecolor="0.35",
                    label="linear probe (ceiling)",
                    zorder=0,
                )
            present = [d for d in order if d in set(runs.loc[runs["site"] == site, "dict"])]
            sns.pointplot(
                data=runs[runs["site"] == site],
                x="group",
                y=metric,
                hue="dict",
                order=groups,
                hue_order=present,
                palette=palette,
                errorbar=("pi", 100),
                capsize=0.1,
                dodge=0.5 if len(present) > 1 else False,
                linestyle="none",
                markers="o",
                ax=ax,
            )
            ax.axhline(0.5, color="0.4", lw=0.8, ls="--", zorder=0)
            ax.set(
                title=(site or None) if r == 0 else None,
                xlabel="concept group" if r == len(metrics) - 1 else "",
                ylim=(0.35, 1.02),
                ylabel=f"held-out token AUROC\n{QUESTIONS[metric]}" if i == 0 else "",
            )
            h, lab = ax.get_legend_handles_labels()
            handles, labels = (h, lab) if len(lab) > len(labels) else (handles, labels)
            if ax.get_legend():
                ax.get_legend().remove()
    names = [f"{d} ({KIND_LABELS.get(kinds[d], kinds[d])})" if d in kinds else d for d in labels]
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.suptitle(
        "Concept recovery: best feature per concept, chosen and scored on different images", weight="bold", fontsize=10
    )
    return save_figure(fig, out)
