"""Capture a site's activations by replaying a stored trajectory through the transformer.

Adding a site never regenerates images: the shard holds the transformer's exact inputs at
every step, so we call the transformer on them and abort the forward pass (`StopForward`)
as soon as the site's tensor has been read — nothing after the site's block is computed.
Replayed activations equal those seen during generation bit for bit when the replay batch
matches the generation batch (the default) and the device/dtype are the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..sites import Site
from .generate import read_shard
from .hooks import StopForward, check_site, site_hook
from .loading import model_info

REPLAY_TENSORS = ("prompt_id", "latents", "timesteps", "guidance", "prompt_embeds", "pooled_prompt_embeds", "text_mask")


def execution_device(obj) -> torch.device:
    """Where a pipeline (its offload-aware execution device) or a bare transformer computes."""
    dev = getattr(obj, "_execution_device", None)
    if dev is not None:
        return torch.device(dev)
    return next(obj.parameters()).device


def replay_inputs(shard: dict, step: int, rows: slice, grid, device, dtype, has_guidance: bool) -> dict:
    """The transformer's keyword arguments at `step` for shard rows `rows` (as the pipeline built them)."""
    from diffusers import FluxPipeline

    def fresh(t, dt):
        # a new (aligned, contiguous) allocation, like the pipeline's own tensors: CPU BLAS
        # kernels can round differently on the unaligned views of a loaded safetensors buffer
        return t.to(device=device, dtype=dt, copy=True, memory_format=torch.contiguous_format)

    emb = shard["prompt_embeds"][rows]
    b = emb.shape[0]
    return dict(
        hidden_states=fresh(shard["latents"][step, rows], dtype),
        timestep=fresh(shard["timesteps"][step].expand(b), dtype),
        guidance=fresh(shard["guidance"][rows], torch.float32) if has_guidance else None,
        pooled_projections=fresh(shard["pooled_prompt_embeds"][rows], dtype),
        encoder_hidden_states=fresh(emb, dtype),
        txt_ids=torch.zeros(emb.shape[1], 3, device=device, dtype=dtype),
        img_ids=FluxPipeline._prepare_latent_image_ids(None, grid[0], grid[1], device, dtype),
        joint_attention_kwargs={},
        return_dict=False,
    )


def run_to_site(transformer, site: Site, inputs: dict) -> torch.Tensor:
    """[B, T, d] stream tokens of `site` for one transformer call; stops right after the site."""
    got = {}

    def fn(x, state):
        got["x"] = x.detach()

    with site_hook(transformer, site, fn, stop=True), torch.no_grad():
        try:
            transformer(**inputs)
        except StopForward:
            pass
    if "x" not in got:
        raise RuntimeError(f"site '{site.name}' was never reached during replay")
    return got["x"]


def replay_steps(pipe_or_transformer, shard: dict, grid, site: Site, rows: slice) -> Iterator:
    """(step, [B, T, d] tokens of `site`) for each of the site's steps, replaying shard `rows`
    (`read_shard` output, `REPLAY_TENSORS` at least) in the dtype the pipeline ran them in."""
    transformer = getattr(pipe_or_transformer, "transformer", pipe_or_transformer)
    has_guidance = model_info(transformer)["guidance_embeds"]
    device, dtype = execution_device(pipe_or_transformer), shard["prompt_embeds"].dtype
    for step in site.steps:
        yield step, run_to_site(transformer, site, replay_inputs(shard, step, rows, grid, device, dtype, has_guidance))


def replayed_token_norm(pipe, site: Site, shard_path: str | os.PathLike, rows: int = 8) -> float:
    """Mean token norm at `site` (mean over its steps), replaying the first `rows` images of a
    generation shard: the steering unit of a site that has no activation store of its own."""
    from .intervene import mean_token_norm

    shard, meta = read_shard(shard_path, names=REPLAY_TENSORS)
    norms = [mean_token_norm(x) for _, x in replay_steps(pipe, shard, meta["grid"], site, slice(0, rows))]
    return sum(norms) / len(norms)


def select_tokens(n: int, keep: int | None, seed: int, prompt_id: int, step: int) -> np.ndarray:
    """Token positions kept for one image and step: all, or `keep` sampled without replacement
    from a generator seeded by (seed, prompt_id, step) — independent of batching."""
    if keep is None or keep >= n:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(prompt_id), int(step)])
    return np.sort(rng.choice(n, size=keep, replace=False))


def capture(
    pipe_or_transformer,
    shard_path: str | os.PathLike,
    site: Site,
    out_zarr: str | os.PathLike,
    tokens_per_image: int | None = None,
    seed: int = 0,
    *,
    batch_size: int | None = None,
    split: str | None = None,
    dtype: str = "float16",
    progress: bool = True,
) -> int:
    """Replay a generation shard up to `site` at ``site.steps`` and write an activation store.

    Rows: every kept token of the site's stream for each image and step (text: non-padding
    tokens only, via the shard's ``text_mask``), ordered by prompt, step, token. `batch_size`
    defaults to the shard's generation batch size, which makes replay bit-identical to
    generation. `dtype`: store dtype, float16 (checked for overflow) or bfloat16. Returns the
    number of rows written.
    """
    from tqdm.auto import tqdm

    from ..store import ActivationWriter

    transformer = getattr(pipe_or_transformer, "transformer", pipe_or_transformer)
    check_site(transformer, site)
    shard, meta = read_shard(shard_path, names=REPLAY_TENSORS)
    n_steps = shard["timesteps"].shape[0]
    bad = [s for s in site.steps if not 0 <= s < n_steps]
    if bad:
        raise ValueError(
            f"site '{site.name}': steps {bad} are outside the {n_steps}-step schedule of {shard_path} "
            f"(valid: 0..{n_steps - 1})"
        )
    info = model_info(transformer)
    width = info["mlp_hidden"] if site.place == "mlp" else info["d_model"]
    batch_size = int(batch_size or meta.get("batch_size", 8))
    grid = meta["grid"]
    pids = shard["prompt_id"].numpy()
    text_mask = shard["text_mask"]
    attrs = {
        "site": site.to_dict(),
        "d_model": width,
        "grid": grid,
        "split": split,
        "shard": Path(shard_path).stem,
        "model": meta.get("model"),
        "tokens_per_image": tokens_per_image,
        "seed": seed,
        "steps": list(site.steps),
    }
    writer = ActivationWriter(out_zarr, width, attrs, dtype=dtype)
    with writer:
        for b0 in tqdm(range(0, len(pids), batch_size), desc=f"capture {site.name}", disable=not progress):
            rows = slice(b0, min(b0 + batch_size, len(pids)))
            # model dtype on the host: the writer converts per image, keeping host memory at 1x
            xs = {step: x.cpu() for step, x in replay_steps(pipe_or_transformer, shard, grid, site, rows)}
            # rows ordered prompt, step, token whatever the replay batching
            for j, pid in enumerate(pids[rows]):
                for step, x in xs.items():
                    if site.stream == "txt":
                        cand = np.flatnonzero(text_mask[b0 + j].numpy())
                    else:
                        cand = np.arange(x.shape[1])
                    tok = cand[select_tokens(len(cand), tokens_per_image, seed, pid, step)]
                    writer.append(
                        x[j, torch.from_numpy(tok)],
                        prompt_id=np.full(len(tok), pid, np.int64),
                        step=np.full(len(tok), step, np.int16),
                        token=tok.astype(np.int32),
                    )
    return writer.n_rows
