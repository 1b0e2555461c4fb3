"""Steering strengths are given in units of the site's mean token norm.

A fixed absolute strength means very different things at different layers (residual norms grow
with depth), so the paper scales the unit direction by a multiple of the mean norm of the site's
tokens. This module measures that norm from the site's activation store (``model.mean_token_norm``
does the same for a tensor already in memory).
"""

from __future__ import annotations

import os

import numpy as np


def site_token_norm(store: str | os.PathLike, max_tokens: int = 65_536) -> float:
    """Mean L2 norm of the tokens in an activation store (`activations/{site}/{split}.zarr`).

    Reads at most ``max_tokens`` rows, evenly strided over the store so that every shard and
    step contributes, in float32 (float16 squares overflow past 256).
    """
    import zarr

    group = zarr.open_group(str(store), mode="r")
    if "x" not in group:
        raise ValueError(f"{store}: not an activation store (no 'x' array); see docs/architecture.md")
    x = group["x"]
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{store}: activation store is empty; cannot measure the mean token norm")
    stride = max(1, n // max_tokens)
    rows = np.asarray(x[::stride][:max_tokens])
    if group.attrs.get("dtype") == "bfloat16" or rows.dtype == np.uint16:
        # bf16 is stored as its raw uint16 bits: widen to the top half of a float32.
        rows = (rows.astype(np.uint32) << 16).view(np.float32)
    return float(np.linalg.norm(rows.astype(np.float32), axis=-1).mean())
