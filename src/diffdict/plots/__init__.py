"""Figures (seaborn, one style: `style`), result collection (`collect`), the static HTML
feature browser (`browser`) and the entry page that links them (`report_index`). Every figure
function takes a tidy DataFrame and an output path and writes ``.png`` and ``.pdf`` atomically."""

from ..lazy import lazy_exports

# name -> module; imported when first used, so collecting tables does not load seaborn or torch
_EXPORTS = {
    "collect_metrics": "collect",
    "collect_tables": "collect",
    "melt_prefix": "collect",
    "plot_concept_recovery": "concepts",
    "plot_interp_scores": "interp_scores",
    "plot_fvu_by_site": "reconstruction",
    "plot_l0_vs_fvu": "reconstruction",
    "plot_reconstruction": "reconstruction",
    "plot_splice_recovery": "splice",
    "copy_grid": "steering",
    "plot_steering_success": "steering",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


def draw(name: str, table: str, out: str) -> None:
    """Figure `name` (``plot_{name}``, or ``steering_grid``: a copy of a steering run's grid) from
    a table file (.csv or .parquet) to `out` (.png, with a .pdf beside it)."""
    import pandas as pd

    if name == "steering_grid":
        __getattr__("copy_grid")(table, out)
        return
    if f"plot_{name}" not in _EXPORTS:
        valid = sorted(n.removeprefix("plot_") for n in _EXPORTS if n.startswith("plot_"))
        raise ValueError(f"unknown figure '{name}'; valid: {', '.join(valid + ['steering_grid'])}")
    fn = __getattr__(f"plot_{name}")
    fn(pd.read_parquet(table) if str(table).endswith(".parquet") else pd.read_csv(table), out)


__all__ = sorted([*_EXPORTS, "draw"])
