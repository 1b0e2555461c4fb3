"""Figures (seaborn, one style: `style`), result collection (`collect`), the static HTML
feature browser (`browser`) and the entry page that links them (`report_index`). Every figure
function takes a tidy DataFrame and an output path and writes ``.png`` and ``.pdf`` atomically."""

from .collect import collect_metrics, collect_tables, melt_prefix
from .concepts import plot_concept_recovery
from .interp_scores import plot_interp_scores
from .reconstruction import plot_fvu_by_site, plot_l0_vs_fvu, plot_reconstruction
from .splice import plot_splice_recovery
from .steering import copy_grid, plot_steering_success


def draw(name: str, table: str, out: str) -> None:
    """Figure `name` (``plot_{name}``, or ``steering_grid``: a copy of a steering run's grid) from
    a table file (.csv or .parquet) to `out` (.png, with a .pdf beside it)."""
    import pandas as pd

    if name == "steering_grid":
        copy_grid(table, out)
        return
    fn = globals().get(f"plot_{name}")
    if fn is None:
        valid = sorted(n.removeprefix("plot_") for n in globals() if n.startswith("plot_"))
        raise ValueError(f"unknown figure '{name}'; valid: {', '.join(valid + ['steering_grid'])}")
    fn(pd.read_parquet(table) if str(table).endswith(".parquet") else pd.read_csv(table), out)


__all__ = [
    "collect_metrics",
    "collect_tables",
    "copy_grid",
    "draw",
    "melt_prefix",
    "plot_concept_recovery",
    "plot_fvu_by_site",
    "plot_interp_scores",
    "plot_l0_vs_fvu",
    "plot_reconstruction",
    "plot_splice_recovery",
    "plot_steering_success",
]
