"""Hierarchical bootstrap: confidence intervals that carry run-to-run variation.

A method's score is the mean over its training runs (replicates) of each run's mean over units
(features, or concepts). Resampling only the pooled units treats features of three runs as
independent draws and hides how much a result moves with the training seed; here every
bootstrap sample draws runs with replacement first, then units within each drawn run.

* unpaired units (features: every run has its own) — each drawn run resamples its own units;
* paired units (concepts: the same concepts for every run and every method) — one draw of unit
  indices per bootstrap sample is shared by all runs of both methods, so a hard concept is hard
  for both sides of a difference.

NaN units (a concept without positives, a feature that could not be scored) are left out of
their run's mean. With one run the run level adds nothing and the CI is the units' alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

Runs = Sequence[np.ndarray]


def _estimate(runs: Runs) -> float:
    means = [np.nanmean(r) for r in runs if np.isfinite(r).any()]
    return float(np.mean(means)) if means else float("nan")


def _unit_means(runs: Runs, n_boot: int, rng: np.random.Generator, units: np.ndarray | None) -> np.ndarray:
    """[n_boot, R]: each run's mean over a resample of its units (the shared draw `units` if paired)."""
    out = np.empty((n_boot, len(runs)))
    for j, r in enumerate(runs):
        idx = units if units is not None else rng.integers(0, len(r), size=(n_boot, len(r)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resample: NaN, dropped later
            out[:, j] = np.nanmean(r[idx], axis=1)
    return out


def _run_level(unit_means: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n_boot]: mean over R runs drawn with replacement, each at its own unit resample."""
    n_boot, n_runs = unit_means.shape
    pick = rng.integers(0, n_runs, size=(n_boot, n_runs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.take_along_axis(unit_means, pick, axis=1), axis=1)


def _check(runs: Runs, name: str, paired: bool) -> list[np.ndarray]:
    out = [np.asarray(r, float).ravel() for r in runs]
    if not out or any(len(r) == 0 for r in out):
        raise ValueError(f"hierarchical bootstrap: `{name}` needs at least one run with at least one unit")
    if paired and len({len(r) for r in out}) != 1:
        raise ValueError(
            f"hierarchical bootstrap: paired units need equal lengths, `{name}` has {sorted({len(r) for r in out})}"
        )
    return out


def hierarchical_ci(
    a: Runs, b: Runs | None = None, paired: bool = False, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(estimate, low, high) of mean(a) — or of mean(a) - mean(b) — with a percentile CI.

    `a`, `b`: one array of unit scores per training run. ``paired``: unit i is the same thing
    in every run of `a` and `b` (concepts), so unit draws are shared."""
    a = _check(a, "a", paired)
    bs = _check(b, "b", paired) if b is not None else None
    if paired and bs is not None and len(bs[0]) != len(a[0]):
        raise ValueError(f"hierarchical bootstrap: paired units differ in number ({len(a[0])} vs {len(bs[0])})")
    rng = np.random.default_rng(seed)
    units = rng.integers(0, len(a[0]), size=(n_boot, len(a[0]))) if paired else None
    stat = _run_level(_unit_means(a, n_boot, rng, units), rng)
    est = _estimate(a)
    if bs is not None:
        stat = stat - _run_level(_unit_means(bs, n_boot, rng, units), rng)
        est = est - _estimate(bs)
    if not np.isfinite(est):
        return float("nan"), float("nan"), float("nan")
    q = (1 - ci) / 2
    return est, float(np.nanquantile(stat, q)), float(np.nanquantile(stat, 1 - q))
