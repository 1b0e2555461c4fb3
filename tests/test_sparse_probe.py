"""k-sparse probing: known answers on planted features."""

import numpy as np
import pytest

from diffdict.metrics.concepts import selection_images
from diffdict.metrics.sparse_probe import sparse_probe_recovery, top_mean_difference

IMAGES, TOKENS = 200, 16


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(IMAGES), TOKENS)
    tok = np.tile(np.arange(TOKENS), IMAGES)
    return rng, pid, tok


def test_top_mean_difference_ranks_by_absolute_difference():
    y = np.array([True, True, False, False])
    x = np.array([[1.0, 0.0, 5.0], [1.0, 0.0, 5.0], [0.0, 3.0, 5.0], [0.0, 3.0, 5.0]])
    assert top_mean_difference(x, y, 2).tolist() == [1, 0]  # |0 - 3| > |1 - 0|; column 2 never differs
    assert top_mean_difference(x, y, 9).tolist() == [1, 0, 2]


def test_a_concept_split_over_two_features_needs_k_two():
    rng, pid, tok = _rows()
    n = len(pid)
    x = rng.random((n, 10)).astype(np.float32)  # columns 2.. are noise
    obj = rng.random(n) < 0.4
    red = obj & (x[:, 0] + x[:, 1] > 1.0)  # red = both hue features high together
    masks = np.stack([red, obj & ~red, ~obj], 1)
    t = sparse_probe_recovery(x, pid, tok, masks, ["color=red", "color=blue", "background=dark"], ks=(1, 2, 8))
    r = t[t.concept == "color=red"].set_index("k")
    assert r.loc[1, "kind_token_auroc"] < 0.9  # one feature: half the story
    assert r.loc[2, "kind_token_auroc"] > 0.98
    assert sorted(r.loc[2, "kind_features"]) == [0, 1]
    assert r.loc[8, "kind_token_auroc"] > 0.97  # noise columns do not hurt much


def test_features_unrelated_to_the_concept_score_chance():
    rng, pid, tok = _rows(1)
    x = rng.normal(size=(len(pid), 16)).astype(np.float32)
    masks = (rng.random((len(pid), 2)) < 0.3).astype(bool)
    t = sparse_probe_recovery(x, pid, tok, masks, ["shape=circle", "shape=square"], ks=(1, 4, 16))
    assert np.abs(t["token_auroc"] - 0.5).max() < 0.05


def test_within_the_kind_a_foreground_detector_is_no_help():
    rng, pid, tok = _rows(2)
    n = len(pid)
    obj = rng.random(n) < 0.3
    red = obj & (rng.random(n) < 0.5)
    x = np.stack([obj.astype(float), rng.random(n)], 1)  # a foreground detector and noise
    masks = np.stack([red, obj & ~red, ~obj], 1)
    t = sparse_probe_recovery(x, pid, tok, masks, ["color=red", "color=green", "background=dark"], ks=(1,))
    r = t[t.concept == "color=red"].iloc[0]
    assert r.features == [0] and r.token_auroc > 0.8  # over all tokens "an object is here" ranks red high
    assert abs(r.kind_token_auroc - 0.5) < 0.06  # among objects it says nothing


def test_choice_and_fit_see_the_selection_half_only():
    rng, pid, tok = _rows(3)
    n = len(pid)
    x = rng.random((n, 6)).astype(np.float32)
    y = x[:, 3] > 0.7
    report = ~np.isin(pid, selection_images(pid, 0))
    scrambled = y.copy()
    scrambled[report] = rng.random(report.sum()) < 0.3  # report-half labels carry no signal now
    names = ["size=large"]
    a = sparse_probe_recovery(x, pid, tok, y[:, None], names, ks=(1, 2))
    b = sparse_probe_recovery(x, pid, tok, scrambled[:, None], names, ks=(1, 2))
    assert a["features"].tolist() == b["features"].tolist()  # chosen without the report half
    assert a["token_auroc"].min() > 0.95 and np.abs(b["token_auroc"] - 0.5).max() < 0.06


def test_bad_arguments_are_named():
    _, pid, tok = _rows()
    x = np.zeros((len(pid), 3), np.float32)
    masks = np.zeros((len(pid), 1), bool)
    with pytest.raises(ValueError, match="ks must be positive"):
        sparse_probe_recovery(x, pid, tok, masks, ["color=red"], ks=(0,))
    with pytest.raises(ValueError, match="2 concept names for 1 mask channels"):
        sparse_probe_recovery(x, pid, tok, masks, ["color=red", "color=blue"])
    with pytest.raises(ValueError, match="features have"):
        sparse_probe_recovery(x[:-1], pid, tok, masks, ["color=red"])
