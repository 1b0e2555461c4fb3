"""Figures (seaborn, one style: `style`), result collection (`collect`), the static HTML
feature browser (`browser`) and the entry page that links them (`report_index`). Every figure
function takes a tidy DataFrame and an output path and writes ``.png`` and ``.pdf`` atomically."""

from .collect import collect_metrics, collect_tables
from .concepts import plot_concept_recovery
from .interp_scores import plot_interp_scores
from .reconstruction import plot_fvu_by_site, plot_l0_vs_fvu, plot_reconstruction
from .splice import plot_splice_recovery
from .steering import copy_grid, plot_steering_success

__all__ = [
    "collect_metrics",
    "collect_tables",
    "copy_grid",
    "plot_concept_recovery",
    "plot_fvu_by_site",
    "plot_interp_scores",
    "plot_l0_vs_fvu",
    "plot_reconstruction",
    "plot_splice_recovery",
    "plot_steering_success",
]
