"""Hierarchical bootstrap: known answers."""

import numpy as np
import pytest

from diffdict.bootstrap import hierarchical_ci


def test_one_run_matches_the_plain_bootstrap():
    v = np.random.default_rng(0).normal(0.7, 0.1, 400)
    m, lo, hi = hierarchical_ci([v], n_boot=4000)
    se = v.std(ddof=1) / np.sqrt(len(v))
    assert m == pytest.approx(v.mean()) and (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_ci_widens_with_the_spread_between_runs():
    rng = np.random.default_rng(1)
    same = [rng.normal(0.7, 0.1, 100) for _ in range(3)]
    apart = [r + d for r, d in zip(same, (-0.1, 0.0, 0.1))]
    w = lambda ci: ci[2] - ci[1]
    assert w(hierarchical_ci(apart)) > 3 * w(hierarchical_ci(same))
    # pooled features of the spread runs would look as tight as `same`; the run level does not
    assert w(hierarchical_ci([np.concatenate(apart)])) < 0.5 * w(hierarchical_ci(apart))


def test_estimate_is_the_mean_of_run_means_and_nan_units_drop():
    m, _, _ = hierarchical_ci([np.array([1.0, 0.8]), np.array([0.6, 0.6, 0.6, np.nan])], n_boot=200)
    assert m == pytest.approx(0.75)
    assert all(np.isnan(hierarchical_ci([np.array([np.nan, np.nan])], n_boot=50)))


def test_difference_paired_and_unpaired():
    rng = np.random.default_rng(2)
    hard = rng.uniform(0.5, 1.0, 20)  # concept difficulty shared by both methods
    a = [hard + 0.05 + rng.normal(0, 0.005, 20) for _ in range(3)]
    b = [hard + rng.normal(0, 0.005, 20) for _ in range(3)]
    d, lo, hi = hierarchical_ci(a, b, paired=True)
    assert d == pytest.approx(0.05, abs=0.01) and lo > 0.03
    _, ulo, uhi = hierarchical_ci(a, b, paired=False)
    assert uhi - ulo > 3 * (hi - lo)  # pairing removes the shared difficulty
    with pytest.raises(ValueError, match="equal lengths"):
        hierarchical_ci([np.ones(3), np.ones(4)], paired=True)
    with pytest.raises(ValueError, match="at least one run"):
        hierarchical_ci([])
