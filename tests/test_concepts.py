"""Concept recovery metric: known answers and an independent brute-force check."""

import numpy as np
import pytest
import torch

from diffdict.dictionaries.base import SparseCodes
from diffdict.metrics.concepts import concept_recovery, recovery_summary_table, summarize_recovery


def pairwise_auroc(score: np.ndarray, y: np.ndarray) -> float:
    """Definition: P(s+ > s-) + P(s+ = s-)/2 over all positive/negative pairs."""
    pos, neg = score[y], score[~y]
    d = pos[:, None] - neg[None]
    return float(((d > 0) + 0.5 * (d == 0)).mean())


def dense_reference(dense: np.ndarray, pid: np.ndarray, masks: np.ndarray):
    imgs = np.unique(pid)
    auc = np.full((dense.shape[1], masks.shape[1]), np.nan)
    iou = np.zeros_like(auc)
    for f in range(dense.shape[1]):
        s = np.array([dense[pid == i, f].max() for i in imgs])
        on = dense[:, f] != 0
        for c in range(masks.shape[1]):
            y = np.array([masks[pid == i, c].any() for i in imgs])
            if 0 < y.sum() < len(y):
                auc[f, c] = pairwise_auroc(s, y)
            u = (on | masks[:, c]).sum()
            iou[f, c] = (on & masks[:, c]).sum() / u if u else 0.0
    return auc, iou


def test_feature_equal_to_concept_mask_is_perfect():
    rng = np.random.default_rng(0)
    n_img, n_tok, n_feat = 12, 16, 10
    masks = rng.random((n_img, 4, 4, 2)) < 0.3
    masks[0, ..., 0] = False  # some images lack concept 0 entirely
    masks[1, ..., 0] = False
    masks[2:4, ..., 1] = False  # ... and concept 1 (AUROC needs negatives)
    pid = np.repeat(np.arange(n_img), n_tok)
    tok = np.tile(np.arange(n_tok), n_img)
    flat = masks.reshape(n_img * n_tok, 2)
    # feature 3 == concept 0's mask, feature 7 == concept 1's mask; feature 1 always on (noise)
    idx = np.stack([np.full(len(pid), 3), np.full(len(pid), 7), np.full(len(pid), 1)], 1)
    val = np.stack([flat[:, 0] * 2.0, flat[:, 1] * 0.5, np.ones(len(pid))], 1)
    codes = SparseCodes(torch.tensor(idx), torch.tensor(val, dtype=torch.float32))
    df = concept_recovery(codes, pid, tok, masks, ["c0", "c1"], n_features=n_feat)
    assert df["auroc_feature"].tolist() == [3, 7]
    assert df["iou_feature"].tolist() == [3, 7]
    np.testing.assert_allclose(df["auroc"], 1.0)
    np.testing.assert_allclose(df["iou"], 1.0)
    assert df["n_pos_tokens"].tolist() == flat.sum(0).tolist()


def test_matches_bruteforce_with_ties_and_negative_codes():
    rng = np.random.default_rng(1)
    n, k, n_feat, n_c = 300, 3, 12, 4
    pid = rng.integers(0, 25, n)
    tok = rng.integers(0, 9, n)
    img_masks = rng.random((25, 9, n_c)) < 0.06  # sparse, so images differ in labels
    idx = np.stack([rng.choice(n_feat, k, replace=False) for _ in range(n)])
    val = rng.choice([0.0, 0.5, 1.0, 2.0, -1.0], size=(n, k))  # many ties, padding zeros, negatives
    codes = SparseCodes(torch.tensor(idx), torch.tensor(val))
    df = concept_recovery(codes, pid, tok, img_masks, [f"c{i}" for i in range(n_c)], n_features=n_feat)
    dense = np.zeros((n, n_feat))
    np.add.at(dense, (np.arange(n)[:, None].repeat(k, 1), idx), val)
    ref_auc, ref_iou = dense_reference(dense, pid, img_masks[pid, tok])
    assert np.isfinite(ref_auc).all()  # every concept has positive and negative images
    for c in range(n_c):
        f = df.loc[c, "auroc_feature"]
        np.testing.assert_allclose(df.loc[c, "auroc"], np.nanmax(ref_auc[:, c]))
        np.testing.assert_allclose(df.loc[c, "auroc"], ref_auc[f, c])
        np.testing.assert_allclose(df.loc[c, "iou"], ref_iou[:, c].max())
        np.testing.assert_allclose(df.loc[c, "auroc_feature_iou"], ref_iou[f, c])


def test_per_row_masks_and_mask_prompt_ids_agree():
    rng = np.random.default_rng(2)
    pid = np.repeat(np.array([40, 41, 42, 43]), 4)
    tok = np.tile(np.arange(4), 4)
    img_masks = rng.random((4, 2, 2, 3)) < 0.5
    codes = SparseCodes(torch.tensor(rng.integers(0, 5, (16, 2))), torch.tensor(rng.random((16, 2))))
    a = concept_recovery(codes, pid, tok, img_masks, list("abc"), 5, mask_prompt_ids=[40, 41, 42, 43])
    b = concept_recovery(codes, pid, tok, img_masks.reshape(4, 4, 3)[pid - 40, tok], list("abc"), 5)
    assert a.equals(b)
    with pytest.raises(ValueError, match="no token masks"):
        concept_recovery(codes, pid, tok, img_masks, list("abc"), 5, mask_prompt_ids=[0, 1, 2, 3])


def test_summary():
    rng = np.random.default_rng(3)
    masks = rng.random((6, 4, 2)) < 0.5
    pid = np.repeat(np.arange(6), 4)
    tok = np.tile(np.arange(4), 6)
    flat = masks.reshape(24, 2)
    codes = SparseCodes(torch.tensor(np.stack([np.zeros(24, int), np.ones(24, int)], 1)),
                        torch.tensor(flat.astype(float)))
    df = concept_recovery(codes, pid, tok, masks, ["color=red", "shape=circle"], 2)
    s = summarize_recovery(df)
    assert s["mean_iou"] == pytest.approx(1.0) and s["frac_iou_ge_0.5"] == 1.0
    t = recovery_summary_table({"perfect": df, "shuffled": df.assign(iou=0.0)})
    assert t["mean_iou"].tolist() == [1.0, 0.0] and "color_mean_iou" in t
