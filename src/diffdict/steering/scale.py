"""Steering strengths are given in units of the site's mean token norm.

A fixed absolute strength means very different things at different layers (residual norms grow
with depth), so the paper scales the unit direction by a multiple of the mean norm of the site's
tokens, measured on the site's activation store (``ActivationStore.mean_token_norm``).
Neurons are the exception: they steer along their output weights, i.e. in the residual stream
of their block, so their unit is measured there, by replaying a generation shard.
"""

from __future__ import annotations

import dataclasses
import os

from ..sites import Site
from ..store import ActivationStore


def site_token_norm(store: str | os.PathLike, max_tokens: int = 65_536) -> float:
    """Mean L2 norm of the tokens in an activation store (`activations/{site}/{split}.zarr`),
    over at most ``max_tokens`` rows evenly strided over the store."""
    return ActivationStore.open(store).mean_token_norm(max_tokens)


def steering_site(pipe, site: Site, shard: str | os.PathLike) -> tuple[Site, float | None]:
    """Where a site's features are added, and their strength unit when it is not the mean token
    norm of the site's own store (None). An ``mlp`` site (neurons) steers its block's output
    (``resid``), whose unit is measured by replaying the first rows of generation ``shard``."""
    if site.place != "mlp":
        return site, None
    from ..model.capture import replayed_token_norm

    resid = dataclasses.replace(site, place="resid")
    return resid, replayed_token_norm(pipe, resid, shard)
