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
from ..world.scene import concept_kind
from .concepts import dense_rows, logistic_probe

SPARSE_PROBE_COLUMNS = ("concept", "k", "token_auroc", "kind_token_auroc", "features", "kind_features")


def top_mean_difference(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` columns of `x` [n, F] whose means differ most between y and ~y (largest
    first; ties by column order)."""
    diff = np.abs(x[y].mean(0) - x[~y].mean(0))
    return np.argsort(-diff, kind="stable")[: min(k, x.shape[1])]


def _probe_ks(xf: np.ndarray, yf: np.ndarray, xr: np.ndarray, yr: np.ndarray, ks: list[int], C: float) -> list:
    """Per k: (AUROC on the report rows `xr`, chosen columns) of the probe fitted on `xf` with the
    k top columns; the ranking is computed once (a k's columns are a prefix of a larger k's)."""
    if not (0 < yf.sum() < len(yf)) or not (0 < yr.sum() < len(yr)):
        return [(np.nan, [])] * len(ks)
    order = top_mean_difference(xf, yf, max(ks))
    out = []
    for k in ks:
        cols = order[:k]
        probe = logistic_probe(C).fit(xf[:, cols], yf)
        out.append((auroc(yr, probe.decision_function(xr[:, cols])), [int(c) for c in cols]))
    return out


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
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive feature counts, got {ks}")
    x, masks, sel, _, universe = dense_rows(
        x, prompt_ids, tokens, token_masks, concept_names, mask_prompt_ids, seed, "features"
    )
    kinds = concept_kind(pd.Series(concept_names)).to_numpy()
    # Row sets (fit, report): all tokens, then each kind's, shared by its concepts; rows copied once.
    sets = {None: (sel, ~sel)} | {kd: (sel & universe[:, j], ~sel & universe[:, j]) for j, kd in enumerate(kinds)}
    views = {key: (f, r, x[f], x[r]) for key, (f, r) in sets.items()}
    out = []
    for j, name in enumerate(concept_names):
        y = masks[:, j]
        every, within = (_probe_ks(xf, y[f], xr, y[r], ks, C) for f, r, xf, xr in (views[None], views[kinds[j]]))
        for k, (a, cols), (ka, kcols) in zip(ks, every, within):
            out.append(
                {
                    "concept": name,
                    "k": k,
                    "token_auroc": a,
                    "kind_token_auroc": ka,
                    "features": cols,
                    "kind_features": kcols,
                }
            )
    return pd.DataFrame(out, columns=list(SPARSE_PROBE_COLUMNS))
