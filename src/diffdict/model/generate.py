"""Generate one prompt shard and record everything needed to replay it.

The sampler is diffusers' own: a forward pre-hook on the transformer records exactly the
tensors it receives at each step (latent input, timestep, guidance), and the final latent
comes from ``callback_on_step_end``. Noise is drawn per prompt from its own generator seeded
by the prompt's ``seed`` column, so an image does not depend on which batch it landed in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path
from .loading import model_info
from .settings import model_settings

SHARD_TENSORS = (
    "prompt_id",
    "latents",
    "timesteps",
    "guidance",
    "prompt_embeds",
    "pooled_prompt_embeds",
    "text_mask",
    "images",
)


def encode_prompts(pipe, prompts: list[str], max_sequence_length: int):
    """(prompt_embeds, pooled_prompt_embeds, text_mask) exactly as the pipeline would compute them.

    The mask is the T5 tokenizer's attention mask with the pipeline's own padding settings
    (padding to `max_sequence_length`, truncation), True on real tokens and EOS."""
    if pipe.text_encoder_2 is None or pipe.tokenizer_2 is None or pipe.text_encoder is None:
        raise ValueError("the pipeline has no text encoders; load a complete pipeline to generate from prompts")
    with torch.no_grad():
        embeds, pooled, _ = pipe.encode_prompt(
            prompt=prompts, prompt_2=None, device=pipe._execution_device, max_sequence_length=max_sequence_length
        )
    mask = pipe.tokenizer_2(
        prompts, padding="max_length", max_length=max_sequence_length, truncation=True, return_tensors="pt"
    ).attention_mask.bool()
    return embeds, pooled, mask


def generate_shard(
    pipe, prompts, model_cfg: dict, out_path: str | os.PathLike, batch_size: int | None = None, progress: bool = True
) -> Path:
    """Run the pipeline on a prompts table (columns prompt_id, prompt, seed) and write one
    safetensors shard in the format of docs/architecture.md ("Generation shard").

    model_cfg keys (`model.settings.ModelSettings`, defaults filled in): height, width,
    num_inference_steps, guidance_scale, max_sequence_length, name, batch_size (the `batch_size`
    argument wins)."""
    from tqdm.auto import tqdm

    missing = {"prompt_id", "prompt", "seed"} - set(prompts.columns)
    if missing:
        raise ValueError(f"prompts table lacks columns {sorted(missing)}; has {list(prompts.columns)}")
    if len(prompts) == 0:
        raise ValueError("empty prompt shard")
    model_cfg = model_settings(model_cfg)
    height, width = int(model_cfg["height"]), int(model_cfg["width"])
    steps = int(model_cfg["num_inference_steps"])
    max_len = int(model_cfg["max_sequence_length"])
    guidance_scale = float(model_cfg["guidance_scale"])
    batch_size = int(batch_size or model_cfg["batch_size"])
    transformer = pipe.transformer
    has_guidance = bool(transformer.config.guidance_embeds)

    parts: dict[str, list] = {k: [] for k in SHARD_TENSORS if k != "timesteps"}  # per prompt
    timesteps = None
    for b0 in tqdm(range(0, len(prompts), batch_size), desc=f"generate {Path(out_path).name}", disable=not progress):
        rows = prompts.iloc[b0 : b0 + batch_size]
        embeds, pooled, mask = encode_prompts(pipe, rows["prompt"].tolist(), max_len)
        seeds = [int(s) for s in rows["seed"]]
        batch = _run_batch(pipe, embeds, pooled, seeds, height, width, steps, guidance_scale, max_len)
        if timesteps is None:
            timesteps = batch["timesteps"]
        elif not torch.equal(timesteps, batch["timesteps"]):
            raise RuntimeError("timestep schedule changed between batches of one shard")
        parts["prompt_id"].append(torch.tensor(rows["prompt_id"].to_numpy(np.int64)))
        parts["latents"].append(batch["latents"])
        parts["guidance"].append(batch["guidance"] if has_guidance else torch.zeros(len(rows)))
        parts["prompt_embeds"].append(embeds.detach().cpu())
        parts["pooled_prompt_embeds"].append(pooled.detach().cpu())
        parts["text_mask"].append(mask)
        parts["images"].append(batch["images"])

    tensors = {k: torch.cat(v, dim=1 if k == "latents" else 0).contiguous() for k, v in parts.items()}
    tensors["timesteps"] = timesteps.contiguous()
    vsf = int(getattr(pipe, "vae_scale_factor", 8))
    grid = [height // (2 * vsf), width // (2 * vsf)]
    if grid[0] * grid[1] != tensors["latents"].shape[2]:
        raise RuntimeError(f"image-token grid {grid} does not match {tensors['latents'].shape[2]} latent tokens")
    meta = {
        "height": height,
        "width": width,
        "steps": steps,
        "model": model_cfg.get("name", "unnamed"),
        "grid": grid,
        "vae_scale_factor": vsf,
        "guidance_scale": guidance_scale,
        "max_sequence_length": max_len,
        "batch_size": batch_size,
        "d_model": model_info(transformer)["d_model"],
        "dtype": str(embeds.dtype).replace("torch.", ""),
    }
    with atomic_path(out_path) as tmp:
        save_file(tensors, str(tmp), metadata={"diffdict": json.dumps(meta)})
    return Path(out_path)


def _run_batch(pipe, embeds, pooled, seeds, height, width, steps, guidance_scale, max_len) -> dict:
    """One pipeline call; records the transformer's inputs at every step and the final latent."""
    inputs, ts, gs, final = [], [], [], {}

    def pre_hook(module, args, kwargs):
        inputs.append(kwargs["hidden_states"].detach().float().cpu())
        ts.append(kwargs["timestep"].detach().float().cpu())
        g = kwargs.get("guidance")
        gs.append(None if g is None else g.detach().float().cpu())

    def on_step_end(p, i, t, cb):
        if i == steps - 1:
            final["latents"] = cb["latents"].detach().float().cpu()
        return {}

    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]  # per-prompt noise
    handle = pipe.transformer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        with torch.no_grad():
            images = pipe(
                prompt_embeds=embeds,
                pooled_prompt_embeds=pooled,
                height=height,
                width=width,
                num_inference_steps=steps,
                guidance_scale=guidance_scale,
                generator=gens,
                max_sequence_length=max_len,
                output_type="np",
                callback_on_step_end=on_step_end,
            ).images
    finally:
        handle.remove()
    if len(inputs) != steps:
        raise RuntimeError(f"expected {steps} transformer calls, saw {len(inputs)} (true CFG is not supported)")
    return {
        "latents": torch.stack(inputs + [final["latents"]]),
        "timesteps": torch.stack([t[0] for t in ts]),
        "guidance": gs[0],
        "images": torch.from_numpy((np.asarray(images) * 255).round().clip(0, 255).astype(np.uint8)),
    }


def read_shard(path: str | os.PathLike, names=None) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a generation shard; `names` limits which tensors are loaded."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"generation shard {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("diffdict", "null"))
            keys = set(f.keys())
            missing = [k for k in (names or SHARD_TENSORS) if k not in keys]
            if meta is None or missing:
                raise ValueError(f"missing tensors {missing}" if missing else "no 'diffdict' metadata")
            tensors = {k: f.get_tensor(k) for k in (names or SHARD_TENSORS)}
    except Exception as e:
        raise ValueError(f"{path} is not a readable generation shard: {e}") from e
    return tensors, meta


def generate_images(
    pipe, prompts: Sequence[str], seeds: Sequence[int], model_cfg: Mapping, batch_size: int = 8
) -> np.ndarray:
    """Plain generation, seeded per image: uint8 images [len(prompts), H, W, 3].

    One CPU ``torch.Generator`` per image (CPU so the noise is the same on any device); the
    remaining sampling settings come from the model config (height, width,
    num_inference_steps, guidance_scale, max_sequence_length; defaults: `ModelSettings`).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    model_cfg = model_settings(model_cfg)
    kwargs = {
        "height": int(model_cfg["height"]),
        "width": int(model_cfg["width"]),
        "num_inference_steps": int(model_cfg["num_inference_steps"]),
        "guidance_scale": float(model_cfg["guidance_scale"]),
        "max_sequence_length": int(model_cfg["max_sequence_length"]),
    }
    out = []
    for i in range(0, len(prompts), batch_size):
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i : i + batch_size]]
        with torch.inference_mode():
            res = pipe(prompt=list(prompts[i : i + batch_size]), generator=gens, output_type="np", **kwargs)
        # Same rounding as diffusers' numpy_to_pil, so PNGs of either path match.
        out.append((np.asarray(res.images) * 255).round().clip(0, 255).astype(np.uint8))
    return np.concatenate(out) if out else np.zeros((0, kwargs["height"], kwargs["width"], 3), np.uint8)
