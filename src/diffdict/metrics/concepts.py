"""Concept recovery: does some single feature of a dictionary track each planted concept?

For every concept c and feature f, on the shapes world's annotated generations:

* image-level AUROC: the feature's image score is its maximum code over the image's tokens
  (every captured step); the label is whether the annotator found c anywhere in the image.
  Exact Mann-Whitney AUROC with average ranks for ties; images where f never fires share one
  tie group at score 0.
* token-level IoU: the feature is "on" at a token row when its code is non-zero; the concept
  is on where the annotator's token mask says so. IoU = |on ∩ mask| / |on ∪ mask|.

The best feature per concept (by AUROC and, separately, by IoU) is reported. Everything is
vectorised over features x concepts with scatter-adds (sparse x dense products) and sorts; nothing is dense in
[tokens x features] or [images x features].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..dictionaries.base import SparseCodes


def _scatter_rows(target_idx: torch.Tensor, source_rows: torch.Tensor, weight: torch.Tensor | None,
                  table: torch.Tensor, n_out: int, chunk: int = 1 << 20) -> torch.Tensor:
    """out[f] = Σ_j weight_j · table[source_rows_j] over j with target_idx_j = f, i.e. a sparse
    [n_out x len(table)] matrix times the dense `table` [R, C], as chunked ``index_add_``
    (memory O(chunk x C), no dense [n_out x R])."""
    out = torch.zeros(n_out, table.shape[1], dtype=torch.float64)
    for a in range(0, len(target_idx), chunk):
        src = table[source_rows[a:a + chunk]].double()
        if weight is not None:
            src = src * weight[a:a + chunk, None]
        out.index_add_(0, target_idx[a:a + chunk], src)
    return out


def _as_tensor(x, dtype=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _row_masks(token_masks, prompt_ids, tokens, mask_prompt_ids=None) -> torch.Tensor:
    """Per-row concept masks [N, C] from either per-row masks [N, C] or per-image token masks
    [P, gh, gw, C] / [P, T, C] whose rows are `mask_prompt_ids` (default: row i = prompt i)."""
    m = _as_tensor(token_masks).bool()
    n = len(prompt_ids)
    if m.dim() == 2:
        if m.shape[0] != n:
            raise ValueError(f"per-row token_masks have {m.shape[0]} rows, codes have {n}")
        return m
    if m.dim() == 4:
        m = m.reshape(m.shape[0], -1, m.shape[-1])
    if m.dim() != 3:
        raise ValueError(f"token_masks must be [N,C], [P,T,C] or [P,gh,gw,C]; got {tuple(m.shape)}")
    if mask_prompt_ids is None:
        rows = prompt_ids
    else:
        mp = _as_tensor(mask_prompt_ids, torch.int64)
        order = torch.argsort(mp)
        pos = torch.searchsorted(mp[order], prompt_ids).clamp(max=len(mp) - 1)
        if not torch.equal(mp[order][pos], prompt_ids):
            raise ValueError("some prompt_ids have no token masks")
        rows = order[pos]
    if int(tokens.max()) >= m.shape[1]:
        raise ValueError(f"token position {int(tokens.max())} outside the mask grid of {m.shape[1]} tokens")
    return m[rows, tokens]


def _auroc(img_idx: torch.Tensor, feat: torch.Tensor, score: torch.Tensor, labels: torch.Tensor,
           n_features: int) -> torch.Tensor:
    """Exact AUROC [F, C] from sparse (image, feature, score) triples (one per pair; absent
    pairs score 0) and image labels [P, C] (bool)."""
    p, c = labels.shape
    y = labels.double()
    n_pos = y.sum(0)  # [C]
    n_neg = p - n_pos
    # Sort triples by (feature, score) to rank within each feature; ties share the average rank.
    o = torch.argsort(score, stable=True)
    o = o[torch.argsort(feat[o], stable=True)]
    f_s, s_s, i_s = feat[o], score[o], img_idx[o]
    nnz_f = torch.bincount(feat, minlength=n_features)  # images where f is non-zero
    # Scores below zero rank under the zero group, scores above rank over it.
    neg_f = torch.bincount(feat[score < 0], minlength=n_features)
    n_zero = p - nnz_f
    start = torch.cumsum(nnz_f, 0) - nnz_f  # first sorted position of each feature
    pos_in_f = torch.arange(len(o)) - start[f_s]  # 0-based rank among f's non-zero entries
    # rank among all P images (1-based): the zero group sits after the negative scores.
    base = torch.where(s_s < 0, pos_in_f, pos_in_f + n_zero[f_s]).double() + 1
    # average ranks over ties: groups of equal (feature, score)
    key_change = torch.ones(len(o), dtype=torch.bool)
    if len(o) > 1:
        key_change[1:] = (f_s[1:] != f_s[:-1]) | (s_s[1:] != s_s[:-1])
    gid = torch.cumsum(key_change.long(), 0) - 1
    g_sum = torch.zeros(int(gid.max()) + 1 if len(o) else 0, dtype=torch.float64).index_add_(0, gid, base)
    g_cnt = torch.bincount(gid).double()
    rank = (g_sum / g_cnt)[gid]
    zero_rank = neg_f.double() + (n_zero.double() + 1) / 2  # average rank of the zero group
    # Σ ranks of positives = Σ_nonzero rank·y + zero_rank·(positives in the zero group)
    r_pos = _scatter_rows(f_s, i_s, rank, y, n_features)  # [F, C]
    pos_nz = _scatter_rows(f_s, i_s, None, y, n_features)
    r_pos = r_pos + zero_rank[:, None] * (n_pos[None] - pos_nz)
    auc = (r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, float("nan")))


def concept_recovery(codes: SparseCodes, prompt_ids, tokens, token_masks, concept_names: list[str],
                     n_features: int, mask_prompt_ids=None) -> pd.DataFrame:
    """One row per concept: the best feature by image-level AUROC (``auroc_feature``,
    ``auroc``, and that feature's ``auroc_feature_iou``) and the best by token-level IoU
    (``iou_feature``, ``iou``), plus positive counts.

    `codes`: sparse codes of N token rows; `prompt_ids`, `tokens`: [N] image and token
    position of each row; `token_masks`: [N, C] per row, or [P, gh, gw, C] / [P, T, C] per
    image (rows `mask_prompt_ids`, default row = prompt id)."""
    pid = _as_tensor(prompt_ids, torch.int64)
    tok = _as_tensor(tokens, torch.int64)
    n, k = codes.indices.shape
    if len(pid) != n or len(tok) != n:
        raise ValueError(f"prompt_ids/tokens have {len(pid)}/{len(tok)} rows, codes have {n}")
    masks = _row_masks(token_masks, pid, tok, mask_prompt_ids)  # [N, C]
    c = masks.shape[1]
    if len(concept_names) != c:
        raise ValueError(f"{len(concept_names)} concept names for {c} mask channels")

    vals = codes.values.detach().reshape(-1).double().cpu()
    feats = codes.indices.detach().reshape(-1).long().cpu()
    rows = torch.arange(n).repeat_interleave(k)
    keep = vals != 0
    vals, feats, rows = vals[keep], feats[keep], rows[keep]
    if len(feats) and (int(feats.max()) >= n_features or int(feats.min()) < 0):
        raise ValueError(f"feature index out of range [0, {n_features})")
    # a row listing the same feature twice counts once (sum its values)
    key, inv = torch.unique(rows * n_features + feats, return_inverse=True)
    vals = torch.zeros(len(key), dtype=torch.float64).index_add_(0, inv, vals)
    rows, feats = key // n_features, key % n_features

    # --- token-level IoU ---------------------------------------------------------------
    on = vals != 0
    mf = masks.double()
    inter = _scatter_rows(feats[on], rows[on], None, masks, n_features)  # [F, C] |on ∩ mask|
    active = torch.bincount(feats[on], minlength=n_features).double()
    m_count = mf.sum(0)
    union = active[:, None] + m_count[None] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))

    # --- image-level AUROC -----------------------------------------------------------------
    images, img_of_row = torch.unique(pid, return_inverse=True)
    p = len(images)
    labels = torch.zeros(p, c).index_add_(0, img_of_row, masks.float()) > 0
    ikey, iinv = torch.unique(img_of_row[rows] * n_features + feats, return_inverse=True)
    iscore = torch.full((len(ikey),), -torch.inf, dtype=torch.float64).scatter_reduce_(0, iinv, vals, "amax")
    # an image where f has codes but all negative still has score max(·, 0) if some token lacks f;
    # keep the max over the listed codes and treat unlisted tokens as 0:
    rows_per_img = torch.bincount(img_of_row, minlength=p)
    listed = torch.bincount(iinv, minlength=len(ikey))
    iscore = torch.where(listed < rows_per_img[ikey // n_features], iscore.clamp(min=0), iscore)
    nz = iscore != 0
    auc = _auroc((ikey // n_features)[nz], (ikey % n_features)[nz], iscore[nz], labels, n_features)

    auc_f = torch.nan_to_num(auc, nan=-1.0).argmax(0)  # concepts with no negatives/positives: NaN
    iou_f = iou.argmax(0)
    ar = torch.arange(c)
    return pd.DataFrame({
        "concept": list(concept_names),
        "auroc_feature": auc_f.numpy().astype(np.int64),
        "auroc": auc[auc_f, ar].numpy(),
        "auroc_feature_iou": iou[auc_f, ar].numpy(),
        "iou_feature": iou_f.numpy().astype(np.int64),
        "iou": iou[iou_f, ar].numpy(),
        "n_pos_images": labels.sum(0).numpy().astype(np.int64),
        "n_images": np.full(c, p, dtype=np.int64),
        "n_pos_tokens": masks.sum(0).numpy().astype(np.int64),
        "n_tokens": np.full(c, n, dtype=np.int64),
    })


def summarize_recovery(df: pd.DataFrame, auroc_threshold: float = 0.9, iou_threshold: float = 0.5) -> dict:
    """Summary of one dictionary's table: means over concepts (NaN concepts skipped) and the
    fraction of concepts recovered above the thresholds; also per concept kind ("color", ...)."""
    d = df.dropna(subset=["auroc"])
    out = {
        "n_concepts": int(len(d)),
        "mean_auroc": float(d["auroc"].mean()) if len(d) else float("nan"),
        "mean_iou": float(df["iou"].mean()) if len(df) else float("nan"),
        f"frac_auroc_ge_{auroc_threshold}": float((d["auroc"] >= auroc_threshold).mean()) if len(d) else float("nan"),
        f"frac_iou_ge_{iou_threshold}": float((df["iou"] >= iou_threshold).mean()) if len(df) else float("nan"),
    }
    kinds = df["concept"].str.split("=").str[0]
    for kind, g in df.groupby(kinds):
        out[f"{kind}_mean_auroc"] = float(g["auroc"].mean())
        out[f"{kind}_mean_iou"] = float(g["iou"].mean())
    return out


def recovery_summary_table(tables: dict[str, pd.DataFrame], **kw) -> pd.DataFrame:
    """One row per dictionary (e.g. {"sae": df, "itda": df, "neurons": df, "random": df})."""
    return pd.DataFrame([{"dictionary": name, **summarize_recovery(df, **kw)} for name, df in tables.items()])
