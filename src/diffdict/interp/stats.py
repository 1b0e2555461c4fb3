"""Per-feature statistics of sparse codes, all vectorised (segment ops over the nonzeros).

Conventions (the same for SAE, ITDA, neurons and random directions):

- An *image* is a prompt id. A token's activation in an image is its maximum over the
  captured denoising steps (the heatmap shown and judged is the image's, not one step's).
- Activation is the positive part of a code: negative values (signed random projections)
  do not count as firing.
- ``frequency`` is the fraction of store rows (token x step) where the feature is nonzero.
- A token is *active* when its activation is at or above the ``active_quantile`` of that
  feature's nonzero token activations. An image is *non-activating* (a negative for the judge)
  when its maximum is below the ``negative_quantile`` (default 0: the minimum nonzero value,
  i.e. the feature is exactly zero on the image; raise it for features that fire weakly almost
  everywhere, as on large images with many tokens). A threshold relative to each feature's own
  distribution makes methods with different code scales comparable (the paper's code used
  absolute thresholds 5 vs 1 for SAE vs ITDA).

Memory is O(nnz) (a few int64/float32 per nonzero), never O(tokens x features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .codes import CodeTable


@dataclass
class FeatureStats:
    features: pd.DataFrame  # one row per feature (all features, including dead ones)
    images: pd.DataFrame  # one row per (feature, image) with a nonzero activation: feature, prompt_id, max, n_active


@dataclass
class TokenEntries:
    """Nonzero (feature, image, token) activations, max over steps; sorted by (feature, image, token)."""

    feature: torch.Tensor
    image: torch.Tensor  # index into `image_ids`
    token: torch.Tensor
    value: torch.Tensor
    image_ids: torch.Tensor  # sorted unique prompt ids of the split


def token_entries(codes: CodeTable, features: torch.Tensor | None = None) -> TokenEntries:
    """Aggregate the codes over steps into unique (feature, image, token) entries.

    With ``features`` only those features are kept (cheap heatmaps for sampled features)."""
    image_ids, img_of_row = torch.unique(codes.prompt_id, return_inverse=True)
    n_img, n_tok = len(image_ids), codes.grid[0] * codes.grid[1]
    k = codes.indices.shape[1]
    f = codes.indices.reshape(-1).long()
    v = codes.values.reshape(-1).float()
    keep = v > 0
    if features is not None:
        keep &= torch.isin(f, features.long())
    f, v = f[keep], v[keep]
    rows = torch.arange(len(codes)).repeat_interleave(k)[keep]
    key = (f * n_img + img_of_row[rows]) * n_tok + codes.token[rows].long()
    uk, inv = torch.unique(key, return_inverse=True)
    val = torch.zeros(len(uk)).scatter_reduce_(0, inv, v, "amax", include_self=False)
    return TokenEntries(
        feature=uk // (n_img * n_tok), image=(uk // n_tok) % n_img, token=uk % n_tok, value=val, image_ids=image_ids
    )


def segment_quantiles(seg: torch.Tensor, values: torch.Tensor, n_seg: int, qs) -> torch.Tensor:
    """Linear-interpolated quantiles of `values` per segment id `seg` -> [n_seg, len(qs)] (NaN when empty)."""
    order = torch.sort(values, stable=True).indices
    order = order[torch.sort(seg[order], stable=True).indices]  # by segment, then value
    sv = values[order]
    counts = torch.bincount(seg, minlength=n_seg)
    starts = torch.cumsum(counts, 0) - counts
    q = torch.as_tensor(qs, dtype=torch.float64)
    pos = q[None, :] * (counts[:, None] - 1).clamp(min=0)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (counts[:, None] - 1).clamp(min=0))
    frac = (pos - lo).float()
    if len(sv) == 0:
        return torch.full((n_seg, len(q)), float("nan"))
    gather = lambda i: sv[(starts[:, None] + i).clamp(max=len(sv) - 1)]  # noqa: E731
    out = gather(lo) * (1 - frac) + gather(hi) * frac
    return torch.where(counts[:, None] > 0, out, torch.full_like(out, float("nan")))


def feature_statistics(
    codes: CodeTable, quantiles=(0.5, 0.9, 0.99), active_quantile: float = 0.5, negative_quantile: float = 0.0
) -> FeatureStats:
    if not 0.0 <= negative_quantile <= active_quantile <= 1.0:
        raise ValueError(
            "need 0 <= interp.negative_quantile <= interp.active_quantile <= 1, got "
            f"{negative_quantile} and {active_quantile}"
        )
    F = codes.n_features
    fired = codes.indices.reshape(-1).long()[codes.values.reshape(-1) > 0]
    frequency = torch.bincount(fired, minlength=F).double() / max(len(codes), 1)

    e = token_entries(codes)
    qs = [*quantiles, active_quantile, negative_quantile]
    qv = segment_quantiles(e.feature, e.value, F, qs)
    threshold, neg_threshold = qv[:, -2], qv[:, -1]
    count = torch.bincount(e.feature, minlength=F)
    vmax = torch.zeros(F).scatter_reduce_(0, e.feature, e.value, "amax", include_self=False)
    vsum = torch.zeros(F, dtype=torch.float64).index_add_(0, e.feature, e.value.double())
    active = e.value >= threshold[e.feature]

    # (feature, image) pairs: entries are sorted by feature then image, so consecutive-unique works
    pair = e.feature * len(e.image_ids) + e.image
    upair, pinv = torch.unique_consecutive(pair, return_inverse=True)
    pmax = torch.zeros(len(upair)).scatter_reduce_(0, pinv, e.value, "amax", include_self=False)
    pact = torch.zeros(len(upair), dtype=torch.long).index_add_(0, pinv, active.long())
    pfeat = upair // len(e.image_ids)

    feats = {
        "feature": np.arange(F),
        "frequency": frequency.numpy(),
        "n_nonzero_tokens": count.numpy(),
        "n_images": torch.bincount(pfeat, minlength=F).numpy(),
        "max": torch.where(count > 0, vmax, torch.zeros(())).numpy(),
        "mean_nonzero": (vsum / count.clamp(min=1)).float().numpy(),
        **{f"q{_qname(q)}": qv[:, i].numpy() for i, q in enumerate(quantiles)},
        "threshold": threshold.numpy(),
        "neg_threshold": neg_threshold.numpy(),
        "n_active_tokens": torch.bincount(e.feature, weights=active.double(), minlength=F).long().numpy(),
        "n_active_images": torch.bincount(pfeat[pact > 0], minlength=F).numpy(),
    }
    images = pd.DataFrame(
        {
            "feature": pfeat.numpy(),
            "prompt_id": e.image_ids[upair % len(e.image_ids)].numpy(),
            "max": pmax.numpy(),
            "n_active": pact.numpy(),
        }
    )
    return FeatureStats(features=pd.DataFrame(feats), images=images)


def heatmaps(codes: CodeTable, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
    """Token activations [gh, gw] (max over steps, positive part) for (feature, prompt_id) pairs."""
    if not pairs:
        return {}
    gh, gw = codes.grid
    feats = torch.as_tensor(sorted({f for f, _ in pairs}))
    e = token_entries(codes, feats)
    pf, pp = torch.as_tensor(pairs, dtype=torch.long).T.contiguous()
    known = torch.isin(pp, e.image_ids)
    want = pf * len(e.image_ids) + torch.searchsorted(e.image_ids, pp).clamp(max=len(e.image_ids) - 1)
    pair = e.feature * len(e.image_ids) + e.image
    uw, winv = torch.unique(want, return_inverse=True)
    m = torch.isin(pair, uw)
    slot = torch.searchsorted(uw, pair[m])
    dense = torch.zeros(len(uw) * gh * gw).index_put_((slot * gh * gw + e.token[m],), e.value[m])
    dense = dense.view(len(uw), gh, gw).numpy()
    out = {}
    for i, (f, p) in enumerate(pairs):
        out[(int(f), int(p))] = dense[winv[i]].copy() if known[i] else np.zeros((gh, gw), np.float32)
    return out


def _qname(q: float) -> str:
    return f"{q * 100:g}".replace(".", "_")
