"""One look for every figure: seaborn theme, a fixed colour per dictionary kind, and atomic
PNG + PDF output.

Colours follow the dictionary *kind* (every SAE figure uses the same blue), so a reader can
compare figures at a glance; several dictionaries of one kind get shades of that colour.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (rules run headless)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

# Every registered kind has a place here (a test checks): the order fixes its colour in every figure.
KIND_ORDER = ("topk_sae", "matryoshka_sae", "itda", "neurons", "random", "pretrained")
KIND_LABELS = {
    "topk_sae": "TopK SAE",
    "matryoshka_sae": "Matryoshka SAE",
    "itda": "ITDA",
    "neurons": "MLP neurons",
    "random": "random directions",
    "pretrained": "pretrained (imported)",
}
_BASE = dict(zip(KIND_ORDER, sns.color_palette("colorblind", len(KIND_ORDER))))
_OTHER = sns.color_palette("colorblind", 10)[len(KIND_ORDER) :]
DPI = 200


def apply_style() -> None:
    """Set the project theme; every figure function calls this first."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.15,
        rc={
            "figure.dpi": 100,
            "savefig.dpi": DPI,
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "pdf.fonttype": 42,
        },
    )


def kind_of(dicts: pd.DataFrame) -> dict[str, str]:
    """``{dict name: kind}`` from a table with ``dict`` and optional ``kind`` columns."""
    if "kind" not in dicts.columns:
        return {d: d for d in dicts["dict"].unique()}
    return dict(zip(dicts["dict"], dicts["kind"].fillna(dicts["dict"])))


def dict_order(kinds: Mapping[str, str]) -> list[str]:
    """Dictionaries ordered by kind (`KIND_ORDER`), then name."""
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    return sorted(kinds, key=lambda d: (rank.get(kinds[d], len(rank)), d))


def dict_palette(kinds: Mapping[str, str]) -> dict[str, tuple]:
    """A colour per dictionary: its kind's colour, lightened for each further dict of a kind."""
    out, seen, n_other = {}, {}, 0
    for d in dict_order(kinds):
        kind = kinds[d]
        if kind in _BASE:
            base = _BASE[kind]
        else:
            base = _BASE.setdefault(kind, _OTHER[n_other % len(_OTHER)])
            n_other += 1
        i = seen[kind] = seen.get(kind, -1) + 1
        out[d] = (
            sns.set_hls_values(base, l=min(0.85, sns.utils.colorsys.rgb_to_hls(*base)[1] + 0.15 * i)) if i else base
        )
    return out


def site_order(sites: Iterable[str]) -> list[str]:
    """Execution order for site names such as ``double3_img`` / ``single18_img``: double-stream
    blocks first, then by block index; unknown names last, alphabetically."""

    def key(name: str):
        m = re.match(r"(double|single)\D*(\d+)", name)
        if not m:
            return (2, 0, name)
        return (0 if m.group(1) == "double" else 1, int(m.group(2)), name)

    return sorted(set(sites), key=key)


def require(df: pd.DataFrame, columns: Iterable[str], what: str, allow_empty: bool = False) -> None:
    """Fail with the missing columns named, instead of a KeyError deep inside seaborn."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: table lacks columns {missing}; has {list(df.columns)}")
    if df.empty and not allow_empty:
        raise ValueError(f"{what}: table is empty")


def message_figure(out: str | os.PathLike, title: str, message: str) -> tuple[Path, Path]:
    """The figure of a valid run with nothing to plot: its title and, in words, why (so a config
    with no eligible feature, or nothing steered, still gets every figure, each saying what is
    missing, instead of a failed job)."""
    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(message, 70), ha="center", va="center", transform=ax.transAxes, color="0.3")
    return save_figure(fig, out)


def figure_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """``x.png`` / ``x.pdf`` / ``x`` -> (``x.png``, ``x.pdf``)."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".png", ".pdf") else out
    return stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")


def save_figure(fig: plt.Figure, out: str | os.PathLike, tight_layout: bool = True) -> tuple[Path, Path]:
    """Write `fig` as PNG and PDF next to each other (atomically) and close it.

    Pass ``tight_layout=False`` for seaborn FacetGrids: they lay themselves out with the legend
    outside the axes, which a second tight_layout would pull back over the bars."""
    png, pdf = figure_paths(out)
    try:
        if tight_layout:
            fig.tight_layout()
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
        with atomic_path(pdf) as tmp:
            # No creation date: the same data gives the same bytes (reruns don't look changed).
            fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
    finally:
        plt.close(fig)
    return png, pdf
