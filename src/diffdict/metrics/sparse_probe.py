"""k-sparse probing: is a concept carried by a *few* features of a dictionary, if not by one?

`concept_recovery` asks whether one feature tracks each concept. A dictionary may instead split
a concept over a few features (a colour over two hue sectors, say); SAEBench's sparse probing asks
that question. Per concept and k, on the selection half of the images (the same seeded split as
`concept_recovery`, so no image is in both halves): the k features whose mean value differs most
between the concept's tokens and the others (absolute difference of the means), then a logistic
regression on those k features (standardised); on the report half, its token AUROC. Done twice:
over all tokens, and within the concept's kind (selection, fit and report on the tokens where the
kind applies: object tokens for colour, shape, size and position, background tokens for
background), where a foreground detector is no help. With k = the number of features it is a
dense probe on the dictionary's codes; on raw activations it is the probe ceiling fitted the
same way. Random directions of the same width and sparsity are the null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..interp.scoring import auroc
from .concepts import _as_tensor, _halves, _row_masks, kind_universe

SPARSE_PROBE_COLUMNS = ("concept", "k", "token_auroc", "kind_token_auroc", "features", "kind_features")


def top_mean_difference(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` columns of `x` [n, F] whose means differ most between y and ~y (largest
    first; ties by column order)."""
    diff = np.abs(x[y].mean(0) - x[~y].mean(0))
    return np.argsort(-diff, kind="stable")[: min(k, x.shape[1])]


def _fit_score(x: np.ndarray, y: np.ndarray, fit: np.ndarray, report: np.ndarray, k: int, C: float):
    """Choose k columns and fit on the `fit` rows; AUROC on the `report` rows and the columns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xf, yf = x[fit], y[fit]
    if not (0 < yf.sum() < len(yf)) or not (0 < y[report].sum() < report.sum()):
        return np.nan, []
    cols = top_mean_difference(xf, yf, k)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    probe.fit(xf[:, cols], yf)
    return auroc(y[report], probe.decision_function(x[report][:, cols])), [int(c) for c in cols]


def sparse_probe_recovery(
    x,
    prompt_ids,
    tokens,
    token_masks,
    concept_names: list[str],
    ks=(1, 2, 4, 8),
    mask_prompt_ids=None,
    seed: int = 0,
    C: float = 1.0,
) -> pd.DataFrame:
    """One row per (concept, k) (`SPARSE_PROBE_COLUMNS`): held-out token AUROC of a logistic
    regression on the k features chosen on the selection half, over all tokens and within the
    concept's kind. `x` [N, F]: dense feature values (a dictionary's codes, or activations) of
    N token rows; the other arguments as in `concept_recovery`."""
    x = np.asarray(x, dtype=np.float32)
    pid = _as_tensor(prompt_ids)
    tok = _as_tensor(tokens)
    if len(pid) != len(x) or len(tok) != len(x):
        raise ValueError(f"prompt_ids/tokens have {len(pid)}/{len(tok)} rows, features have {len(x)}")
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be positive feature counts, got {list(ks)}")
    masks = _row_masks(token_masks, pid.long(), tok.long(), mask_prompt_ids).numpy()
    if len(concept_names) != masks.shape[1]:
        raise ValueError(f"{len(concept_names)} concept names for {masks.shape[1]} mask channels")
    sel = _halves(pid.long(), seed)[0].numpy()
    universe = kind_universe(masks, concept_names)
    out = []
    for j, name in enumerate(concept_names):
        y, u = masks[:, j], universe[:, j]
        for k in ks:
            a, cols = _fit_score(x, y, sel, ~sel, int(k), C)
            ka, kcols = _fit_score(x, y, sel & u, ~sel & u, int(k), C)
            out.append(
                {
                    "concept": name,
                    "k": int(k),
                    "token_auroc": a,
                    "kind_token_auroc": ka,
                    "features": cols,
                    "kind_features": kcols,
                }
            )
    return pd.DataFrame(out, columns=list(SPARSE_PROBE_COLUMNS))
