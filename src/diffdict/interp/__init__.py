"""Visual automated interpretation: sparse codes, feature statistics, cards, explainers/judges
and leak-free detection scores. See `run` for the stages and `protocol` for the procedure."""

from .codes import CodeTable, encode_batches
from .protocol import FeatureTask, LeakError, build_tasks, split_images
from .run import DEFAULTS, explain_and_score, feature_stats, make_cards, resolve_config, run_interp
from .scoring import auroc, balanced_accuracy, bootstrap_ci, detection_score
from .stats import FeatureStats, feature_statistics, heatmaps

__all__ = [
    "CodeTable",
    "DEFAULTS",
    "FeatureStats",
    "FeatureTask",
    "LeakError",
    "auroc",
    "balanced_accuracy",
    "bootstrap_ci",
    "build_tasks",
    "detection_score",
    "encode_batches",
    "explain_and_score",
    "feature_statistics",
    "feature_stats",
    "heatmaps",
    "make_cards",
    "resolve_config",
    "run_interp",
    "split_images",
]
