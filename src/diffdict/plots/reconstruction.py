"""Reconstruction figures: FVU by site (layer) and the sparsity-fidelity trade-off (L0 vs FVU).

Input: the tidy reconstruction table (`collect.collect_metrics`), one row per (site, dict):
``site, dict, kind, fvu, l0, dead_fraction`` (+ anything else, ignored).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .style import KIND_LABELS, apply_style, dict_order, dict_palette, kind_of, require, save_figure, site_order

# Kinds not fitted to reconstruct (random directions, the MLP's neurons): their FVU is a floor,
# drawn only in the L0 panel so that the FVU-by-site scale belongs to the dictionaries learned.
FLOOR_KINDS = ("random", "neurons")


def _select(df: pd.DataFrame, kinds) -> pd.DataFrame:
    """The rows of `kinds` (None: every kind but `FLOOR_KINDS`)."""
    if "kind" not in df.columns:
        return df
    data = df[~df["kind"].isin(FLOOR_KINDS)] if kinds is None else df[df["kind"].isin(kinds)]
    if data.empty:
        shown = "fitted kinds (not " + ", ".join(FLOOR_KINDS) + ")" if kinds is None else f"kinds {list(kinds)}"
        raise ValueError(f"FVU by site: no dictionaries of {shown} in the table")
    return data


def _draw_fvu(ax, data: pd.DataFrame) -> None:
    km = kind_of(data)
    sns.pointplot(
        data=data,
        x="site",
        y="fvu",
        hue="dict",
        order=site_order(data["site"]),
        hue_order=dict_order(km),
        palette=dict_palette(km),
        markers="o",
        dodge=0.2 if len(km) > 1 else False,
        ax=ax,
        errorbar=None,
    )  # seaborn divides by n_hue - 1
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set(
        xlabel="site (execution order)",
        ylabel="FVU (held-out)",
        ylim=(0, max(1.05, data["fvu"].max() * 1.05)),
        title="Fraction of variance unexplained",
    )
    ax.tick_params(axis="x", rotation=30)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles,
        [f"{d} ({KIND_LABELS.get(km.get(d), km.get(d, d))})" for d in labels],
        title="dictionary",
        fontsize="small",
    )


def _draw_l0(ax, df: pd.DataFrame) -> None:
    km = kind_of(df)
    sns.scatterplot(
        data=df,
        x="l0",
        y="fvu",
        hue="dict",
        style="site",
        hue_order=dict_order(km),
        style_order=site_order(df["site"]),
        palette=dict_palette(km),
        s=70,
        ax=ax,
    )
    ax.set(xlabel="L0 (active features per token)", ylabel="FVU (held-out)", title="Sparsity vs fidelity")
    if df["l0"].max() / max(df["l0"].min(), 1e-9) > 20:
        ax.set_xscale("log")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small")


def plot_fvu_by_site(df: pd.DataFrame, out: str | os.PathLike, kinds=None):
    """FVU per site (in execution order), one line per dictionary of the given `kinds`
    (None: every kind fitted to reconstruct). Lower is better; 1.0 is the per-dimension-mean predictor."""
    require(df, ["site", "dict", "fvu"], "FVU by site")
    apply_style()
    data = _select(df, kinds)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * data["site"].nunique() + 2.5), 3.6))
    _draw_fvu(ax, data)
    return save_figure(fig, out)


def plot_l0_vs_fvu(df: pd.DataFrame, out: str | os.PathLike):
    """Sparsity against fidelity: each point a (site, dict); colour = dictionary, marker = site."""
    require(df, ["site", "dict", "fvu", "l0"], "L0 vs FVU")
    apply_style()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    _draw_l0(ax, df)
    return save_figure(fig, out)


def plot_reconstruction(df: pd.DataFrame, out: str | os.PathLike, kinds=None):
    """Both panels in one figure: FVU by site (`kinds` only) | L0 vs FVU (every dictionary)."""
    require(df, ["site", "dict", "fvu", "l0"], "reconstruction")
    apply_style()
    data = _select(df, kinds)
    fig, (a, b) = plt.subplots(
        1, 2, figsize=(max(4.5, 0.9 * data["site"].nunique() + 2.5) + 5.5, 3.8), gridspec_kw={"width_ratios": [1.1, 1]}
    )
    _draw_fvu(a, data)
    _draw_l0(b, df)
    return save_figure(fig, out)
