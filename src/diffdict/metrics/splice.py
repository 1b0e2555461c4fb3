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

Pixel MSE saturates on the shapes world (a flat background dominates it, so even random
directions "recover" most of it). With an ``annotate`` function (the world's annotator) the
images are also compared by *what they show*: agreement is the Jaccard similarity of the
concept sets of the spliced (or ablated) and the clean image, and
``effect_recovered_annotation = (A(splice) - A(ablate)) / (1 - A(ablate))``: 1 when every
spliced image shows what the clean one shows, 0 no better than mean ablation.
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


def jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


@torch.no_grad()
def spliced_generation(
    pipe,
    dictionary,
    site: Site,
    shard_path,
    mean: torch.Tensor,
    model_cfg: dict,
    n_prompts: int | None = None,
    batch_size: int = 16,
    annotate=None,
) -> dict:
    """Effect recovered by `dictionary` at `site` on the prompts of one generation shard.
    ``annotate``: uint8 images [B, H, W, 3] -> list of concept sets (shapes world)."""
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
    sums = {f"{kind}_{what}": 0.0 for kind in fns for what in ("denoiser", "image", "agreement")}
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
        clean_concepts = annotate(shard["images"][rows].numpy()) if annotate is not None else None
        for kind, fn in fns.items():
            with splice(transformer, site, fn, steps=site.steps, token_mask=mask):
                img = pipe(
                    prompt_embeds=shard["prompt_embeds"][rows].to(device),
                    pooled_prompt_embeds=shard["pooled_prompt_embeds"][rows].to(device),
                    latents=shard["latents"][0, rows].to(device, dtype),
                    height=meta["height"],
                    width=meta["width"],
                    num_inference_steps=meta["steps"],
                    guidance_scale=meta.get("guidance_scale", 0.0),
                    output_type="np",
                    max_sequence_length=meta.get("max_sequence_length", 512),
                ).images
            # quantised like the stored clean images, so an exact splice differs by exactly 0
            img = (torch.from_numpy(np.asarray(img)).float() * 255).round().clamp(0, 255) / 255
            sums[f"{kind}_image"] += float(((img - clean_img) ** 2).sum())
            if annotate is not None:
                got = annotate((img * 255).to(torch.uint8).numpy())
                sums[f"{kind}_agreement"] += sum(jaccard(set(a), set(b)) for a, b in zip(got, clean_concepts))
    return {
        "n_prompts": n,
        "steps": list(site.steps),
        "effect_recovered_denoiser": _recovered(sums["splice_denoiser"], sums["ablate_denoiser"]),
        "effect_recovered_image": _recovered(sums["splice_image"], sums["ablate_image"]),
        **(
            {
                "agreement_splice": sums["splice_agreement"] / n,
                "agreement_ablate": sums["ablate_agreement"] / n,
                "effect_recovered_annotation": _recovered(n - sums["splice_agreement"], n - sums["ablate_agreement"]),
            }
            if annotate is not None
            else {}
        ),
        **{f"sse_{k}": v for k, v in sums.items() if not k.endswith("agreement")},
    }
