"""Visual automated interpretation: sparse codes, feature statistics, cards, explainers/judges
and leak-free detection scores. See `run` for the stages and `protocol` for the procedure.

Names are imported from their modules when first used, so that a job reading scores does not
pay for torch and the backends."""

from ..lazy import lazy_exports

_EXPORTS = {
    "CodeTable": "codes",
    "encode_batches": "codes",
    "FeatureTask": "protocol",
    "LeakError": "protocol",
    "build_tasks": "protocol",
    "split_images": "protocol",
    "DEFAULTS": "run",
    "explain_and_score": "run",
    "feature_stats": "run",
    "make_cards": "run",
    "resolve_config": "run",
    "run_interp": "run",
    "auroc": "scoring",
    "balanced_accuracy": "scoring",
    "bootstrap_ci": "scoring",
    "detection_score": "scoring",
    "FeatureStats": "stats",
    "feature_statistics": "stats",
    "heatmaps": "stats",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
