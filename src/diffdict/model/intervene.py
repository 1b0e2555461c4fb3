"""Interventions at a site: activation addition (steering) and reconstruction splicing.

Both are context managers around a transformer (or a pipeline: its ``.transformer`` is used),
so any generation code runs unchanged inside them::

    with steer(pipe.transformer, site, direction, strength=0.8 * norm, steps=None, border=4):
        images = pipe(...).images
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch

from ..sites import Site
from .hooks import CallState, site_hook


def _transformer(obj):
    return getattr(obj, "transformer", obj)


def _site_for(site: Site, stream: str | None) -> Site:
    if stream is None or stream == site.stream:
        return site
    from dataclasses import replace

    return replace(site, stream=stream)


@contextlib.contextmanager
def steer(
    transformer,
    site: Site,
    direction: torch.Tensor,
    strength: float,
    steps: Iterable[int] | None = None,
    stream: str = "img",
    border: int = 0,
) -> Iterator[CallState]:
    """Add ``strength * direction`` to every `stream` token of the site on `steps`.

    `direction` is [d] (the site's width: d_model for ``resid``, the MLP width for ``mlp``);
    it is used as given (unit-normalise it yourself if you want `strength` in activation
    units, e.g. ``0.8 * mean_token_norm``). ``steps=None`` steers every step. ``border > 0``
    leaves image tokens within `border` tokens of the grid's edge unsteered (the paper uses 4).
    Yields the hook's `CallState` (``.calls`` tells how many forward passes were seen).
    """
    site = _site_for(site, stream)
    steps = None if steps is None else frozenset(int(s) for s in steps)
    direction = direction.detach().reshape(-1)
    if border and site.stream != "img":
        raise ValueError("border applies to image tokens only (stream='img')")
    cache: dict = {}

    def fn(x, state: CallState):
        if steps is not None and state.step not in steps:
            return None
        if direction.shape[0] != x.shape[-1]:
            raise ValueError(f"steering direction has {direction.shape[0]} dims, site '{site.name}' has {x.shape[-1]}")
        key = (x.device, x.dtype, x.shape[1])
        if key not in cache:
            v = (strength * direction.to(x.device, torch.float32)).expand(x.shape[1], -1).clone()
            if border:
                v[state.border_mask(border).to(x.device)] = 0
            cache[key] = v
        # add in fp32 then cast back: bf16 sums of a small vector onto large tokens lose bits
        return (x.float() + cache[key]).to(x.dtype)

    with site_hook(_transformer(transformer), site, fn) as state:
        yield state


@contextlib.contextmanager
def splice(
    transformer,
    site: Site,
    fn: Callable[[torch.Tensor], torch.Tensor],
    steps: Iterable[int] | None = None,
    token_mask: torch.Tensor | None = None,
) -> Iterator[CallState]:
    """Replace the site's stream tokens by ``fn(x)`` (e.g. a dictionary's reconstruction).

    `fn` gets the tokens flattened to [B*T, d] in float32 and returns the same shape.
    ``token_mask`` ([B, T] bool, e.g. a shard's ``text_mask`` for ``txt`` sites) limits the
    replacement to the True tokens; the others pass through unchanged.
    """
    steps = None if steps is None else frozenset(int(s) for s in steps)

    def hook(x, state: CallState):
        if steps is not None and state.step not in steps:
            return None
        flat = x.reshape(-1, x.shape[-1]).float()
        if token_mask is None:
            return fn(flat).reshape(x.shape)
        m = token_mask.to(x.device).reshape(-1)
        out = flat.clone()
        out[m] = fn(flat[m]).to(out.dtype)
        return out.reshape(x.shape)

    with site_hook(_transformer(transformer), site, hook) as state:
        yield state


def mean_token_norm(x: torch.Tensor) -> float:
    """Mean L2 norm of the rows of ``x`` [..., d] (the paper's steering unit)."""
    return float(x.float().norm(dim=-1).mean())
