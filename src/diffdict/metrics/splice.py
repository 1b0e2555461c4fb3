"""Spliced generation: how much of the model's behaviour survives replacing a site's
activations by their dictionary reconstruction.

Reconstruction error in activation space says little about what the model does with the
error. So we splice: the site's stream tokens are replaced by ``decode(encode(x))`` at the
site's steps, and we measure two effects against a floor, mean ablation (every token replaced
by the held-out per-dimension mean):

* denoiser output, teacher-forced: the transformer on the *stored* inputs of each site step,
  so both runs see identical inputs and only the splice differs;
* final image, free-running: sampling from the stored initial noise with the splice active.

``effect_recovered = 1 - D(splice) / D(mean ablation)`` with D the mean squared difference
from the clean run: 1 is a perfect substitute, 0 no better than the mean, < 0 worse.
"""

from __future__ import annotations

import numpy as np
import torch

from ..model import read_shard, replay_inputs, splice
from ..model.capture import execution_device
from ..model.loading import model_info
from ..sites import Site


def _recovered(d_splice: float, d_ablate: float) -> float:
    return float("nan") if d_ablate <= 0 else 1.0 - d_splice / d_ablate


@torch.no_grad()
def spliced_generation(pipe, dictionary, site: Site, shard_path, mean: torch.Tensor, model_cfg: dict,
                       n_prompts: int | None = None, batch_size: int = 16) -> dict:
    """Effect recovered by `dictionary` at `site` on the prompts of one generation shard."""
    shard, meta = read_shard(shard_path)
    n = len(shard["prompt_id"]) if n_prompts is None else min(n_prompts, len(shard["prompt_id"]))
    transformer = pipe.transformer
    device = execution_device(pipe)
    dtype = shard["prompt_embeds"].dtype
    has_guidance = model_info(transformer)["guidance_embeds"]
    dictionary = dictionary.to(device).eval()
    mean = mean.to(device).float()

    def reconstruct(x):
        return dictionary(x.float())

    def ablate(x):
        return mean.expand_as(x)

    fns = {"splice": reconstruct, "ablate": ablate}
    sums = {f"{kind}_{what}": 0.0 for kind in fns for what in ("denoiser", "image")}
    for b0 in range(0, n, batch_size):
        rows = slice(b0, min(b0 + batch_size, n))
        mask = shard["text_mask"][rows] if site.stream == "txt" else None
        # Teacher-forced denoiser outputs at each of the site's steps.
        for step in site.steps:
            inputs = replay_inputs(shard, step, rows, meta["grid"], device, dtype, has_guidance)
            clean = transformer(**inputs)[0].float()
            for kind, fn in fns.items():
                with splice(transformer, site, fn, token_mask=mask):
                    out = transformer(**inputs)[0].float()
                sums[f"{kind}_denoiser"] += float(((out - clean) ** 2).sum())
        # Free-running images from the stored initial noise.
        clean_img = shard["images"][rows].float() / 255
        for kind, fn in fns.items():
            with splice(transformer, site, fn, steps=site.steps, token_mask=mask):
                img = pipe(
                    prompt_embeds=shard["prompt_embeds"][rows].to(device),
                    pooled_prompt_embeds=shard["pooled_prompt_embeds"][rows].to(device),
                    latents=shard["latents"][0, rows].to(device, dtype),
                    height=meta["height"], width=meta["width"], num_inference_steps=meta["steps"],
                    guidance_scale=meta.get("guidance_scale", 0.0), output_type="np",
                    max_sequence_length=meta.get("max_sequence_length", 512),
                ).images
            # quantised like the stored clean images, so an exact splice differs by exactly 0
            img = (torch.from_numpy(np.asarray(img)).float() * 255).round().clamp(0, 255) / 255
            sums[f"{kind}_image"] += float(((img - clean_img) ** 2).sum())
    return {
        "n_prompts": n,
        "steps": list(site.steps),
        "effect_recovered_denoiser": _recovered(sums["splice_denoiser"], sums["ablate_denoiser"]),
        "effect_recovered_image": _recovered(sums["splice_image"], sums["ablate_image"]),
        **{f"sse_{k}": v for k, v in sums.items()},
    }
