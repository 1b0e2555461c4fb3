"""Hook sites: read or edit a site's stream tokens inside a FluxTransformer2DModel.

Every site maps to one hook (checked against diffusers 0.42.1, where both block kinds are
called with keyword arguments and return ``(encoder_hidden_states, hidden_states)``, text first):

=========  =======  ================================================================
place      block    hooked tensor
=========  =======  ================================================================
resid      both     block output; ``img`` = ``out[1]``, ``txt`` = ``out[0]``
mlp        double   input of ``ff.net[2]`` (img) / ``ff_context.net[2]`` (txt), post-GELU
mlp        single   output of ``act_mlp``: text then image tokens, split at the text length
=========  =======  ================================================================

A forward pre-hook on the transformer tracks the denoising step and the token layout of
the current call (text length, image-token grid from ``img_ids``), so site hooks never need
the pipeline. The step is derived from the ``timestep`` argument, not from a call count:
a new trajectory starts when t increases (or on the first call), a step ends when t
decreases, and repeated calls at the same t (true-CFG's second pass, one-step schedules)
stay on the same step. So one steering context may span several pipeline calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ..sites import Site, validate_site

# fn(x [B, T, d] of the site's stream, state) -> replacement tensor or None (read only)
SiteFn = Callable[[torch.Tensor, "CallState"], "torch.Tensor | None"]


class StopForward(Exception):
    """Raised from a hook to stop the transformer right after the site (replay capture)."""


class SiteError(ValueError):
    """A site that the model does not have."""


@dataclass
class CallState:
    """What the transformer pre-hook learned about the current forward call."""

    step: int = -1
    timestep: float | None = None
    l_txt: int = 0
    l_img: int = 0
    img_ids: torch.Tensor | None = None  # [L_img, 3]: (0, row, col) per image token
    calls: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int]:
        ids = self.img_ids
        return int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1

    def border_mask(self, border: int) -> torch.Tensor:
        """[L_img] bool, True on image tokens within `border` tokens of the grid's edge."""
        h, w = self.grid
        r, c = self.img_ids[:, 1], self.img_ids[:, 2]
        return (r < border) | (r >= h - border) | (c < border) | (c >= w - border)


def _track(state: CallState):
    def pre_hook(module, args, kwargs):
        hs = kwargs.get("hidden_states", args[0] if args else None)
        ehs = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        t = kwargs.get("timestep")
        t = float(t.reshape(-1)[0]) if t is not None else None
        if state.timestep is None or t is None or t > state.timestep:
            state.step = 0
        elif t < state.timestep:
            state.step += 1
        state.timestep = t
        state.calls += 1
        state.l_img = hs.shape[1]
        state.l_txt = ehs.shape[1] if ehs is not None else 0
        ids = kwargs.get("img_ids")
        if ids is not None:
            state.img_ids = ids[0] if ids.ndim == 3 else ids
        return None

    return pre_hook


def n_blocks(transformer) -> tuple[int, int]:
    return len(transformer.transformer_blocks), len(transformer.single_transformer_blocks)


def check_site(transformer, site: Site) -> None:
    """Raise SiteError, naming the valid choices, if the model has no such site."""
    n_double, n_single = n_blocks(transformer)
    # steps are checked against a trajectory's schedule by the caller (capture, steer)
    errors = validate_site(site, n_double, n_single, n_steps=2**31)
    if errors:
        raise SiteError("; ".join(errors))


def site_block(transformer, site: Site) -> torch.nn.Module:
    check_site(transformer, site)
    blocks = transformer.transformer_blocks if site.block == "double" else transformer.single_transformer_blocks
    return blocks[site.index]


@contextlib.contextmanager
def site_hook(transformer, site: Site, fn: SiteFn, *, stop: bool = False) -> Iterator[CallState]:
    """Call ``fn(x, state)`` on the site's stream tokens at every forward call.

    ``x`` is [B, T, d] (T: image tokens or all text tokens). If `fn` returns a tensor it
    replaces ``x`` in the forward pass. With ``stop=True`` the forward pass is aborted by
    `StopForward` right after `fn` (the caller catches it): nothing after the site runs.
    """
    block = site_block(transformer, site)
    state = CallState()
    handles = [transformer.register_forward_pre_hook(_track(state), with_kwargs=True)]

    def finish(new):
        if stop:
            raise StopForward
        return new

    try:
        if site.place == "resid":
            i = 1 if site.stream == "img" else 0  # blocks return (txt, img)

            def hook(module, args, kwargs, output):
                new = fn(output[i], state)
                if new is not None:
                    output = tuple(new.to(output[i].dtype) if j == i else o for j, o in enumerate(output))
                    return finish(output)
                return finish(None)

            handles.append(block.register_forward_hook(hook, with_kwargs=True))
        elif site.block == "double":
            ff = block.ff if site.stream == "img" else block.ff_context

            def pre(module, args):
                x = args[0]
                new = fn(x, state)
                return finish(None if new is None else (new.to(x.dtype), *args[1:]))

            handles.append(ff.net[2].register_forward_pre_hook(pre))
        else:

            def act(module, args, output):
                lt = state.l_txt
                x = output[:, lt:] if site.stream == "img" else output[:, :lt]
                new = fn(x, state)
                if new is None:
                    return finish(None)
                new = new.to(output.dtype)
                parts = (output[:, :lt], new) if site.stream == "img" else (new, output[:, lt:])
                return finish(torch.cat(parts, dim=1))

            handles.append(block.act_mlp.register_forward_hook(act))
        yield state
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def record_site(transformer, site: Site, steps=None) -> Iterator[list[tuple[int, torch.Tensor]]]:
    """Collect ``(step, x.cpu())`` for every forward call during the context (no edits).

    Used to check replay against full generation and for quick inspection."""
    out: list[tuple[int, torch.Tensor]] = []

    def fn(x, state):
        if steps is None or state.step in steps:
            out.append((state.step, x.detach().to("cpu", copy=True)))

    with site_hook(transformer, site, fn):
        yield out
