"""Held-out concept recovery: known answers, an independent brute-force check, and the split."""

import numpy as np
import pandas as pd
import pytest
import torch

from diffdict.dictionaries.base import SparseCodes
from diffdict.metrics.concept_summary import summarize_concepts
from diffdict.metrics.concepts import (
    _as_tensor,
    best_f1_threshold,
    concept_recovery,
    probe_recovery,
    selection_images,
    token_auroc_matrix,
)


def pairwise_auroc(score: np.ndarray, y: np.ndarray) -> float:
    """Definition: P(s+ > s-) + P(s+ = s-)/2 over all positive/negative pairs."""
    pos, neg = score[y], score[~y]
    d = pos[:, None] - neg[None]
    return float(((d > 0) + 0.5 * (d == 0)).mean())


def world(n_img=40, grid=(4, 4), n_c=2, p=0.3, seed=0):
    rng = np.random.default_rng(seed)
    n_tok = grid[0] * grid[1]
    masks = rng.random((n_img, *grid, n_c)) < p
    pid = np.repeat(np.arange(100, 100 + n_img), n_tok)
    tok = np.tile(np.arange(n_tok), n_img)
    return rng, masks, pid, tok, masks.reshape(n_img * n_tok, n_c)


def test_selection_halves_are_disjoint_seeded_and_shared():
    ids = np.arange(50, 90)
    a = selection_images(np.repeat(ids, 3), seed=0)
    assert len(a) == 20 and set(a) <= set(ids)
    assert np.array_equal(a, selection_images(ids[::-1], seed=0))  # the set, not the row order
    assert not np.array_equal(a, selection_images(ids, seed=1))


def test_feature_equal_to_concept_mask_is_perfect_and_random_is_chance():
    rng, masks, pid, tok, flat = world(n_img=60)
    n = len(pid)
    # feature 3 == concept 0's mask, feature 7 == concept 1's mask; features 10..41 random values
    idx = np.concatenate([np.full((n, 1), 3), np.full((n, 1), 7), rng.integers(10, 42, (n, 4))], 1)
    val = np.concatenate([flat[:, :1] * 2.0, flat[:, 1:] * 0.5, rng.random((n, 4))], 1)
    codes = SparseCodes(torch.tensor(idx), torch.tensor(val, dtype=torch.float32))
    df = concept_recovery(codes, pid, tok, masks, ["c0", "c1"], n_features=42, mask_prompt_ids=np.arange(100, 160))
    assert df["feature"].tolist() == [3, 7]
    np.testing.assert_allclose(df[["token_auroc", "token_f1", "selection_token_auroc"]], 1.0)
    # only random features: the held-out AUROC of the best one is near chance
    rnd = SparseCodes(torch.tensor(idx[:, 2:]), torch.tensor(val[:, 2:], dtype=torch.float32))
    r = concept_recovery(rnd, pid, tok, masks, ["c0", "c1"], n_features=42, mask_prompt_ids=np.arange(100, 160))
    assert (r["token_auroc"] - 0.5).abs().max() < 0.08
    assert (r["selection_token_auroc"] >= r["token_auroc"] - 0.03).all()  # selection flatters


def test_read_only_inputs_are_copied_writable_ones_shared_and_results_equal():
    # zarr's and pandas' views can be read-only; torch would warn and alias memory it may not write
    rng, masks, pid, tok, flat = world(n_img=20)
    ro = tok.copy()
    ro.flags.writeable = False
    assert not np.shares_memory(_as_tensor(ro).numpy(), ro)
    assert np.shares_memory(_as_tensor(tok).numpy(), tok)  # no copy where none is needed
    codes = SparseCodes(torch.zeros(len(pid), 1, dtype=torch.long), torch.tensor(flat[:, :1], dtype=torch.float32))
    args = dict(n_features=1, mask_prompt_ids=np.arange(100, 120))
    ro_masks = masks.copy()
    ro_masks.flags.writeable = False
    a = concept_recovery(codes, pid, tok, masks, ["c0", "c1"], **args)
    b = concept_recovery(codes, pd.Series(pid), ro, ro_masks, ["c0", "c1"], **args)
    pd.testing.assert_frame_equal(a, b)


def test_token_auroc_matrix_matches_bruteforce_with_ties_and_negatives():
    rng = np.random.default_rng(1)
    n, k, n_feat, n_c = 300, 3, 12, 4
    idx = np.stack([rng.choice(n_feat, k, replace=False) for _ in range(n)])
    val = rng.choice([0.0, 0.5, 1.0, 2.0, -1.0], size=(n, k))  # many ties, padding zeros, negatives
    labels = rng.random((n, n_c)) < 0.2
    dense = np.zeros((n, n_feat))
    np.add.at(dense, (np.arange(n)[:, None].repeat(k, 1), idx), val)
    r, f = np.nonzero(dense)
    auc = token_auroc_matrix(torch.tensor(r), torch.tensor(f), torch.tensor(dense[r, f]), torch.tensor(labels), n_feat)
    for j in range(n_feat):
        for c in range(n_c):
            assert auc[j, c].item() == pytest.approx(pairwise_auroc(dense[:, j], labels[:, c]))


def test_reported_numbers_are_the_report_half_only():
    """The chosen feature's reported AUROC equals a brute-force AUROC on the other half's rows."""
    rng, masks, pid, tok, flat = world(n_img=30, p=0.05, seed=4)
    n = len(pid)
    idx = rng.integers(0, 6, (n, 2))
    val = np.where(flat[:, :1], rng.random((n, 2)) + 0.3, rng.random((n, 2)))
    codes = SparseCodes(torch.tensor(idx), torch.tensor(val))
    df = concept_recovery(codes, pid, tok, masks, ["a", "b"], 6, mask_prompt_ids=np.arange(100, 130), seed=3)
    sel = np.isin(pid, selection_images(pid, 3))
    dense = np.zeros((n, 6))
    np.add.at(dense, (np.arange(n)[:, None].repeat(2, 1), idx), val)
    for c in range(2):
        f = df.loc[c, "feature"]
        best_sel = max(range(6), key=lambda j: pairwise_auroc(dense[sel, j], flat[sel, c]))
        assert f == best_sel
        assert df.loc[c, "token_auroc"] == pytest.approx(pairwise_auroc(dense[~sel, f], flat[~sel, c]))
        img = np.unique(pid[~sel])
        s = np.array([dense[pid == i, f].max() for i in img])
        y = np.array([flat[pid == i, c].any() for i in img])
        assert 0 < y.sum() < len(y)
        assert df.loc[c, "image_auroc"] == pytest.approx(pairwise_auroc(s, y))
        assert df.loc[c, "n_images"] == len(img)


def test_best_f1_threshold():
    y = np.array([0, 0, 1, 1, 1, 0], bool)
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.7, 0.75])
    thr, f1 = best_f1_threshold(s, y)
    assert thr == pytest.approx(0.7) and f1 == pytest.approx(2 * 0.75 * 1 / 1.75)
    assert best_f1_threshold(s, np.zeros(6, bool)) == (float("inf"), 0.0)


def test_probe_finds_a_linear_concept():
    rng, masks, pid, tok, flat = world(n_img=60, n_c=2, seed=5)
    x = rng.normal(size=(len(pid), 8)).astype(np.float32)
    x[:, 0] += 3 * flat[:, 0]  # concept 0 is linearly present; concept 1 is not
    p = probe_recovery(x, pid, tok, masks, ["lin", "absent"], mask_prompt_ids=np.arange(100, 160))
    assert p.loc[0, "probe_token_auroc"] > 0.95
    assert abs(p.loc[1, "probe_token_auroc"] - 0.5) < 0.08


def _table(means: dict, spread: float = 0.0, n_c: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    concepts = [f"color=c{i}" for i in range(n_c // 2)] + [f"position=p{i}" for i in range(n_c - n_c // 2)]
    rows = []
    for d, (kind, m) in means.items():
        for r in range(3):
            shift = spread * (r - 1)
            rows += [
                {
                    "site": "s",
                    "dict": d,
                    "kind": kind,
                    "replicate": r,
                    "concept": c,
                    "token_auroc": m + shift + rng.normal(0, 0.02),
                    "probe_token_auroc": 0.97,
                }
                for c in concepts
            ]
    return pd.DataFrame(rows)


def test_summary_difference_and_run_spread():
    t = _table({"sae": ("topk_sae", 0.9), "rnd": ("random", 0.7)})
    s = summarize_concepts(t, n_boot=500).set_index(["dict", "metric"])
    sae = s.loc[("sae", "token_auroc")]
    assert sae["separated"] and sae["diff_vs_random"] == pytest.approx(0.2, abs=0.02)
    assert sae["probe"] == pytest.approx(0.97) and sae["replicates"] == 3
    assert np.isnan(s.loc[("rnd", "token_auroc"), "diff_vs_random"])
    wide = summarize_concepts(
        _table({"sae": ("topk_sae", 0.9), "rnd": ("random", 0.7)}, spread=0.1), n_boot=500
    ).set_index(["dict", "metric"])
    width = lambda x: x["hi"] - x["lo"]
    assert width(wide.loc[("sae", "token_auroc")]) > 3 * width(sae)


def test_summary_counts_concepts_that_share_their_best_feature():
    """One feature chosen for every concept (a detector) vs a distinct one per concept."""
    t = _table({"sae": ("topk_sae", 0.9), "rnd": ("random", 0.7)})
    t["feature"] = np.where(t["dict"] == "sae", 7, t.groupby(["dict", "replicate"]).cumcount())
    t.loc[(t["dict"] == "sae") & (t["replicate"] == 2) & (t["concept"] == "color=c0"), "feature"] = 3
    s = summarize_concepts(t, n_boot=100).set_index(["dict", "metric"])
    assert s.loc[("sae", "token_auroc"), "shared_best_feature"] == pytest.approx((12 + 12 + 11) / 3)
    assert s.loc[("rnd", "token_auroc"), "shared_best_feature"] == 1
    assert np.isnan(summarize_concepts(t.drop(columns="feature"), n_boot=100)["shared_best_feature"]).all()


def test_every_row_carries_the_budget_its_scores_were_reached_with():
    """``l0``: the codes' mean active latents per token (padding, value 0, is not a latent)."""
    rng, masks, pid, tok, flat = world()
    n = len(pid)
    idx = torch.tensor(rng.integers(0, 16, (n, 4)))
    val = torch.tensor(rng.random((n, 4)) + 0.1, dtype=torch.float32)
    val[::2, 3] = 0.0  # every other token keeps 3 latents
    df = concept_recovery(SparseCodes(idx, val), pid, tok, masks, ["c0", "c1"], n_features=16,
                          mask_prompt_ids=np.arange(100, 140))  # fmt: skip
    np.testing.assert_allclose(df["l0"], 3.5)
    t = _table({"sae": ("topk_sae", 0.9), "rnd": ("random", 0.7)})
    t["l0"] = np.where(t["dict"] == "sae", 8.0 + t["replicate"], 4.0)  # runs at 8, 9, 10 latents
    s = summarize_concepts(t, n_boot=100).set_index(["dict", "metric"])
    assert s.loc[("sae", "token_auroc"), "l0"] == pytest.approx(9.0)
    assert s.loc[("rnd", "token_auroc"), "l0"] == pytest.approx(4.0)
    assert np.isnan(summarize_concepts(t.drop(columns="l0"), n_boot=100)["l0"]).all()


def test_a_foreground_feature_passes_all_tokens_but_not_within_its_kind():
    """Feature 0 fires on every object token, feature 1 on red objects only: over all tokens
    both look good for color=red; among object tokens only feature 1 tells red from blue."""
    rng = np.random.default_rng(6)
    n_img, n_tok = 60, 16
    red = rng.random((n_img, n_tok)) < 0.15
    blue = ~red & (rng.random((n_img, n_tok)) < 0.15)
    masks = np.stack([red, blue, ~(red | blue)], -1)  # color=red, color=blue, background=plain
    pid = np.repeat(np.arange(n_img), n_tok)
    tok = np.tile(np.arange(n_tok), n_img)
    flat = masks.reshape(-1, 3)
    fg = (flat[:, 0] | flat[:, 1]).astype(float)
    idx = np.stack([np.zeros(len(pid), int), np.ones(len(pid), int)], 1)
    val = np.stack([fg * (1 + 0.01 * rng.random(len(pid))), flat[:, 0] * 0.5], 1)
    names = ["color=red", "color=blue", "background=plain"]
    only_fg = concept_recovery(
        SparseCodes(torch.tensor(idx[:, :1]), torch.tensor(val[:, :1])),
        pid,
        tok,
        masks.reshape(n_img, n_tok, 3),
        names,
        2,
    ).set_index("concept")
    assert only_fg.loc["color=red", "token_auroc"] > 0.85  # the all-token question is fooled ...
    assert abs(only_fg.loc["color=red", "kind_token_auroc"] - 0.5) < 0.1  # ... the within-kind one is not
    both = concept_recovery(
        SparseCodes(torch.tensor(idx), torch.tensor(val)), pid, tok, masks.reshape(n_img, n_tok, 3), names, 2
    ).set_index("concept")
    assert both.loc["color=red", "kind_feature"] == 1 and both.loc["color=red", "kind_token_auroc"] == 1.0
