"""Concept recovery in the shapes world: does one feature of a dictionary track each planted
concept on held-out tokens, and how close does it come to a supervised linear probe?

The protocol is the same for every dictionary, replicate and the probe, so that every number
can come out either way ("Evaluation that can fail", DESIGN.md):

* The interp images are split in two halves by a seeded permutation of their prompt ids
  (`selection_images`): every method sees the same split, and no image is in both halves.
* Selection half: per concept, the feature with the highest token AUROC is chosen (a feature's
  value at a token row is its code there, 0 where the token does not use it), and the
  threshold that maximises that feature's token F1.
* Report half: the chosen feature's token AUROC against the annotator's token mask, its token
  F1 (with precision and recall) at the chosen threshold, and its image AUROC (score: the maximum over the image's rows;
  label: the image contains the concept).
* Within the concept's kind (``kind_*`` columns): the same question with hard negatives only.
  A token AUROC over all tokens rewards a generic foreground feature for every object concept
  (objects are a minority of the tokens, so "fires on objects" ranks red tokens above most
  others). Here the rows are the tokens where the concept's kind applies (the union of the
  masks of its kind: object tokens for colour, shape, size and position; background tokens
  for background), the best feature is chosen again on the selection half, and a feature must
  tell red objects from objects of other colours.
* Probe ceiling (`probe_recovery`): a logistic regression per concept on the site's dense
  activations of the selection half, scored on the report half the same way.
* ``l0``: the codes' mean active latents per token, the budget every score above was reached with
  (the same on every row of a run): a comparison between methods holds only at one budget, since
  random directions find the concepts better the more latents a token keeps (`ground_truth`).

Rows are (image, step, token): a token captured at two steps counts twice, with the same mask.
The all-features AUROC is exact (Mann-Whitney with average ranks) and vectorised over features
x concepts with scatter-adds and sorts; nothing is dense in [tokens x features].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..dictionaries.base import SparseCodes
from ..interp.scoring import auroc
from ..world.scene import concept_kind

SPLIT_DOMAIN = 0x434F  # "CO": the halves' seed stream, independent of the other interp draws
RESULT_COLUMNS = (
    "concept",
    "feature",
    "selection_token_auroc",
    "token_auroc",
    "threshold",
    "token_f1",
    "token_precision",
    "token_recall",
    "image_auroc",
    "kind_feature",
    "kind_token_auroc",
    "n_pos_tokens",
    "n_tokens",
    "n_pos_images",
    "n_images",
    "n_kind_tokens",
    "l0",
)
PROBE_COLUMNS = (
    "concept",
    "probe_token_auroc",
    "probe_token_f1",
    "probe_token_precision",
    "probe_token_recall",
    "probe_image_auroc",
    "probe_kind_token_auroc",
)


def _scatter_rows(
    target_idx: torch.Tensor,
    source_rows: torch.Tensor,
    weight: torch.Tensor | None,
    table: torch.Tensor,
    n_out: int,
    chunk: int = 1 << 20,
) -> torch.Tensor:
    """out[f] = Σ_j weight_j · table[source_rows_j] over j with target_idx_j = f, i.e. a sparse
    [n_out x len(table)] matrix times the dense `table` [R, C], as chunked ``index_add_``
    (memory O(chunk x C), no dense [n_out x R])."""
    out = torch.zeros(n_out, table.shape[1], dtype=torch.float64)
    for a in range(0, len(target_idx), chunk):
        src = table[source_rows[a : a + chunk]].double()
        if weight is not None:
            src = src * weight[a : a + chunk, None]
        out.index_add_(0, target_idx[a : a + chunk], src)
    return out


def _as_tensor(x, dtype=None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        a = np.asarray(x)  # a pandas column's or zarr's view may be read-only: torch warns, so copy those
        x = torch.as_tensor(a if a.flags.writeable else a.copy())
    return x.to(dtype) if dtype is not None else x


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


def _auroc(
    img_idx: torch.Tensor, feat: torch.Tensor, score: torch.Tensor, labels: torch.Tensor, n_features: int
) -> torch.Tensor:
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


def selection_images(prompt_ids, seed: int) -> np.ndarray:
    """The sorted prompt ids of the selection half: a seeded half of the unique ids (the
    first ``n // 2`` of a permutation). Depends only on the set of ids and the seed."""
    ids = np.unique(np.asarray(prompt_ids, dtype=np.int64))
    rng = np.random.default_rng([SPLIT_DOMAIN, int(seed)])
    return np.sort(ids[rng.permutation(len(ids))[: len(ids) // 2]])


def _dedupe(codes: SparseCodes, n_features: int):
    """Sparse (row, feature, value) triples, one per pair (a row listing a feature twice sums)."""
    n, k = codes.indices.shape
    vals = codes.values.detach().reshape(-1).double().cpu()
    feats = codes.indices.detach().reshape(-1).long().cpu()
    rows = torch.arange(n).repeat_interleave(k)
    keep = vals != 0
    vals, feats, rows = vals[keep], feats[keep], rows[keep]
    if len(feats) and (int(feats.max()) >= n_features or int(feats.min()) < 0):
        raise ValueError(f"feature index out of range [0, {n_features})")
    key, inv = torch.unique(rows * n_features + feats, return_inverse=True)
    vals = torch.zeros(len(key), dtype=torch.float64).index_add_(0, inv, vals)
    return key // n_features, key % n_features, vals


def token_auroc_matrix(rows, feats, vals, labels: torch.Tensor, n_features: int) -> torch.Tensor:
    """Exact token AUROC [F, C] of every feature for every concept, from sparse triples over
    the rows of `labels` [N, C] (absent pairs score 0)."""
    return _auroc(rows, feats, vals, labels.bool(), n_features)


def best_f1_threshold(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``score >= threshold``; (inf, 0) without positives."""
    from sklearn.metrics import precision_recall_curve

    if not y.any():
        return float("inf"), 0.0
    p, r, t = precision_recall_curve(y, score)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)[:-1]
    i = int(np.argmax(f1))
    return float(t[i]), float(f1[i])


def _f1(pred: np.ndarray, y: np.ndarray) -> dict:
    """Token F1 with its precision and recall (NaN where undefined)."""
    tp, n_pred, n_pos = float((pred & y).sum()), float(pred.sum()), float(y.sum())
    return {
        "token_f1": 2 * tp / (n_pred + n_pos) if n_pred + n_pos else float("nan"),
        "token_precision": tp / n_pred if n_pred else float("nan"),
        "token_recall": tp / n_pos if n_pos else float("nan"),
    }


def _image_scores(score: np.ndarray, y: np.ndarray, image: np.ndarray):
    """Per-image maximum score and label (any row positive); `image` is 0..P-1."""
    p = int(image.max()) + 1 if len(image) else 0
    s = np.full(p, -np.inf)
    np.maximum.at(s, image, score)
    lab = np.zeros(p, bool)
    np.logical_or.at(lab, image, y)
    return s, lab


def _report(score: np.ndarray, y: np.ndarray, image: np.ndarray, threshold: float) -> dict:
    """Token AUROC, token F1 at `threshold` and image AUROC of one score on the report half."""
    s_img, y_img = _image_scores(score, y, image)
    return {"token_auroc": auroc(y, score), **_f1(score >= threshold, y), "image_auroc": auroc(y_img, s_img)}


def _halves(pid: torch.Tensor, seed: int):
    sel_ids = torch.as_tensor(selection_images(pid.numpy(), seed))
    sel = torch.isin(pid, sel_ids)
    if not sel.any() or sel.all():
        raise ValueError("concept recovery needs at least two images (one per half)")
    rep_img = torch.unique(pid[~sel], return_inverse=True)[1].numpy()
    return sel, rep_img


def concept_recovery(
    codes: SparseCodes,
    prompt_ids,
    tokens,
    token_masks,
    concept_names: list[str],
    n_features: int,
    mask_prompt_ids=None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per concept (`RESULT_COLUMNS`): the feature chosen on the selection half and its
    held-out scores on the report half (see the module docstring).

    `codes`: sparse codes of N token rows; `prompt_ids`, `tokens`: [N] image and token
    position of each row; `token_masks`: [N, C] per row, or [P, gh, gw, C] / [P, T, C] per
    image (rows `mask_prompt_ids`, default row = prompt id)."""
    pid = _as_tensor(prompt_ids, torch.int64)
    tok = _as_tensor(tokens, torch.int64)
    n = codes.indices.shape[0]
    if len(pid) != n or len(tok) != n:
        raise ValueError(f"prompt_ids/tokens have {len(pid)}/{len(tok)} rows, codes have {n}")
    masks = _row_masks(token_masks, pid, tok, mask_prompt_ids)  # [N, C]
    c = masks.shape[1]
    if len(concept_names) != c:
        raise ValueError(f"{len(concept_names)} concept names for {c} mask channels")
    rows, feats, vals = _dedupe(codes, n_features)
    sel, rep_img = _halves(pid, seed)

    y_all = masks.numpy()
    universe = kind_universe(y_all, concept_names)
    # selection half: every feature's token AUROC, the best per concept (and within its kind)
    auc, best = _best_on(rows, feats, vals, masks, sel, n_features)
    kind_best = _kind_best(rows, feats, vals, masks, sel, universe, concept_names, n_features)

    ss, rs = sel.numpy(), ~sel.numpy()
    l0 = float(codes.l0.double().mean()) if n else np.nan
    out = []
    for j in range(c):
        score = _feature_values(rows, feats, vals, int(best[j]), n)
        thr, _ = best_f1_threshold(score[ss], y_all[ss, j])
        rep = _report(score[rs], y_all[rs, j], rep_img, thr)
        kscore = _feature_values(rows, feats, vals, kind_best[j], n)
        u = rs & universe[:, j]
        out.append(
            {
                "concept": concept_names[j],
                "feature": int(best[j]),
                "selection_token_auroc": float(auc[best[j], j]),
                **rep,
                "threshold": thr,
                "kind_feature": kind_best[j],
                "kind_token_auroc": auroc(y_all[u, j], kscore[u]),
                **_counts(y_all[rs, j], rep_img),
                "n_kind_tokens": int(u.sum()),
                "l0": l0,
            }
        )
    return pd.DataFrame(out, columns=list(RESULT_COLUMNS))


def kind_universe(masks: np.ndarray, concept_names: list[str]) -> np.ndarray:
    """bool [N, C]: the rows where concept c's kind applies (any concept of that kind is on)."""
    kinds = concept_kind(pd.Series(concept_names)).to_numpy()
    out = np.zeros(masks.shape, bool)
    for k in np.unique(kinds):
        cols = kinds == k
        out[:, cols] = masks[:, cols].any(1, keepdims=True)
    return out


def _feature_values(rows, feats, vals, f: int, n: int) -> np.ndarray:
    """Dense values [N] of feature f (0 where a row does not use it)."""
    m = feats == f
    score = np.zeros(n)
    score[rows[m].numpy()] = vals[m].numpy()
    return score


def _best_on(rows, feats, vals, masks: torch.Tensor, keep: torch.Tensor, n_features: int):
    """Token AUROC [F, C] of every feature on the rows in `keep`, and the best feature per column."""
    index = torch.cumsum(keep.long(), 0) - 1  # row -> index among the kept rows
    on = keep[rows]
    auc = token_auroc_matrix(index[rows[on]], feats[on], vals[on], masks[keep], n_features)
    return auc, torch.nan_to_num(auc, nan=-1.0).argmax(0)


def _kind_best(
    rows, feats, vals, masks: torch.Tensor, sel: torch.Tensor, universe: np.ndarray, concept_names, n_features: int
) -> list[int]:
    """Per concept, the feature with the best token AUROC on the selection half's rows of its
    kind (`universe`, from `kind_universe`)."""
    kinds = concept_kind(pd.Series(concept_names)).to_numpy()
    best = [0] * len(concept_names)
    for k in np.unique(kinds):
        cols = np.flatnonzero(kinds == k)
        keep = sel & torch.from_numpy(universe[:, cols[0]])
        _, top = _best_on(rows, feats, vals, masks[:, cols], keep, n_features)
        for j, f in zip(cols, top.tolist()):
            best[j] = int(f)
    return best


def _counts(y: np.ndarray, image: np.ndarray) -> dict:
    _, y_img = _image_scores(np.zeros(len(y)), y, image)
    return {
        "n_pos_tokens": int(y.sum()),
        "n_tokens": int(len(y)),
        "n_pos_images": int(y_img.sum()),
        "n_images": int(len(y_img)),
    }


def dense_rows(x, prompt_ids, tokens, token_masks, concept_names, mask_prompt_ids, seed: int, what: str):
    """The checked inputs of a probe on dense rows `x` [N, d] (`what` names them in errors):
    x as float32, per-row masks [N, C], the selection half [N] (bool), each report row's image
    index, and the kind universe [N, C] (`kind_universe`)."""
    x = np.asarray(x, dtype=np.float32)
    pid = _as_tensor(prompt_ids, torch.int64)
    tok = _as_tensor(tokens, torch.int64)
    if len(pid) != len(x) or len(tok) != len(x):
        raise ValueError(f"prompt_ids/tokens have {len(pid)}/{len(tok)} rows, {what} have {len(x)}")
    masks = _row_masks(token_masks, pid, tok, mask_prompt_ids).numpy()
    if len(concept_names) != masks.shape[1]:
        raise ValueError(f"{len(concept_names)} concept names for {masks.shape[1]} mask channels")
    sel, rep_img = _halves(pid, seed)
    return x, masks, sel.numpy(), rep_img, kind_universe(masks, concept_names)


def logistic_probe(C: float = 1.0):
    """The probes' classifier: a logistic regression on standardised inputs (unfitted)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))


def probe_recovery(
    x,
    prompt_ids,
    tokens,
    token_masks,
    concept_names: list[str],
    mask_prompt_ids=None,
    seed: int = 0,
    max_train_rows: int = 200_000,
    C: float = 1.0,
) -> pd.DataFrame:
    """The linear-probe ceiling (`PROBE_COLUMNS`): per concept, a logistic regression on
    standardised activations `x` [N, d] of the selection half (at most `max_train_rows`,
    seeded), its threshold chosen there by F1, scored on the report half like a feature."""
    x, masks, sel, rep_img, universe = dense_rows(
        x, prompt_ids, tokens, token_masks, concept_names, mask_prompt_ids, seed, "activations"
    )
    train = np.flatnonzero(sel)
    if len(train) > max_train_rows:
        train = np.sort(np.random.default_rng([SPLIT_DOMAIN, int(seed), 1]).choice(train, max_train_rows, False))
    out = []
    for j, name in enumerate(concept_names):
        y = masks[:, j]
        if 0 < y[train].sum() < len(train):
            probe = logistic_probe(C).fit(x[train], y[train])
            score = probe.decision_function(x)
        else:  # one class only: a constant probe
            score = np.zeros(len(x))
        thr, _ = best_f1_threshold(score[sel], y[sel])
        rep = _report(score[~sel], y[~sel], rep_img, thr)
        u = ~sel & universe[:, j]
        out.append(
            {
                "concept": name,
                **{f"probe_{k}": v for k, v in rep.items()},
                "probe_kind_token_auroc": auroc(y[u], score[u]),
            }
        )
    return pd.DataFrame(out, columns=list(PROBE_COLUMNS))
