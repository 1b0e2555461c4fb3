"""Reconstruction metrics of a dictionary on a held-out split, streaming over batches.

    FVU = sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - x_bar||^2,   x_bar = per-dimension mean of the split

Peers disagree on the denominator: sparsify centres on each *batch's* mean, OpenAI's loss is
uncentred per token, overcomplete centres on one scalar (so that a per-dimension-mean predictor
already scores R^2 ~ 0.97), and SAELens once had a bug in its total variance. Ours centres on the
per-dimension mean of the whole split, so predicting that mean scores exactly FVU = 1.

One pass: per-dimension count/mean/M2 of each batch are merged with Chan et al.'s parallel
update in float64, which stays exact for data with a large mean (no sum(x^2) - n*mean^2
cancellation), and the error sum is accumulated alongside.

Also: ``l0`` (mean non-zero codes per token), ``dead_fraction`` / ``alive_fraction`` (features
that never / ever fire on the split), ``mse`` (per element), ``n_tokens``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..dictionaries.base import Dictionary
from ..dictionaries.data import as_batch, check_finite


@torch.no_grad()
def reconstruction_metrics(dictionary: Dictionary, batches: Iterable, site: str = "?") -> dict:
    """``batches``: tensors [B, d] (or the items accepted by `dictionaries.data.as_batch`)."""
    device = next(iter([*dictionary.parameters(), *dictionary.buffers()]), torch.empty(0)).device
    n = 0
    mean = m2 = None
    err = 0.0
    l0 = 0.0
    fired = torch.zeros(dictionary.n_features, dtype=torch.bool, device=device)
    for item in batches:
        b = as_batch(item, n)
        check_finite(b, site)
        x = b.x.to(device)
        if len(x) == 0:
            continue
        codes = dictionary.encode(x)
        x_hat = dictionary.decode(codes)
        err += float((x.double() - x_hat.double()).pow(2).sum())
        nz = codes.values != 0
        l0 += float(nz.sum())
        fired[codes.indices[nz]] = True
        # Chan et al.: merge (n, mean, M2) of this batch into the running ones
        xb = x.double()
        nb, mb = len(xb), xb.mean(0)
        m2b = (xb - mb).pow(2).sum(0)
        if mean is None:
            mean, m2 = mb, m2b
        else:
            delta = mb - mean
            tot = n + nb
            mean = mean + delta * nb / tot
            m2 = m2 + m2b + delta.pow(2) * n * nb / tot
        n += nb
    if n == 0:
        raise ValueError(f"site '{site}': no tokens to evaluate")
    total_var = float(m2.sum())
    d = mean.numel()
    dead = float((~fired).float().mean())
    return {
        "fvu": err / total_var if total_var > 0 else float("nan"),
        "l0": l0 / n,
        "dead_fraction": dead,
        "alive_fraction": 1.0 - dead,
        "mse": err / (n * d),
        "n_tokens": n,
    }
