"""Train the toy pipeline on shapes-world renderings and save it as a diffusers folder.

Three stages, all seeded:
1. VAE (AutoencoderKL): reconstruction (L1 + MSE) with a small KL term. Its latent statistics
   set ``shift_factor``/``scaling_factor`` so the transformer sees roughly unit-variance latents,
   exactly as FluxPipeline undoes them (``z / scaling_factor + shift_factor``) before decoding.
2. Transformer + both text encoders, jointly, with the rectified-flow objective Flux uses:
   x_σ = (1 - σ) x0 + σ ε, target v = ε - x0, the transformer gets ``timestep = σ``. σ is drawn
   half from a logit-normal (as in SD3/Flux training) and half from the four sigmas the default
   4-step Euler schedule visits; the model is only ever sampled at those, so spending capacity
   there is what makes few-step samples clean (the schnell idea, without distillation).
   The text encoders are trained too: random frozen encoders carry no word order, and two-object
   captions need it to bind colours to shapes.
3. The annotator (``annotate.train_annotator``) on renderings and their VAE reconstructions.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import TRAIN_DOMAIN, sample_scenes
from .pipeline import IMAGE_SIZE, MAX_SEQUENCE_LENGTH, build_pipeline
from .recipe import ToyRecipe
from .render import render_batch

log = logging.getLogger(__name__)

INFERENCE_STEPS = 4


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,3] -> float [B,3,H,W] in [-1, 1] (the VAE's range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def pack(z: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] latents -> [B,(H/2)(W/2),4C] tokens (FluxPipeline._pack_latents)."""
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(gh: int, gw: int) -> torch.Tensor:
    ids = torch.zeros(gh, gw, 3)
    ids[..., 1] = torch.arange(gh)[:, None]
    ids[..., 2] = torch.arange(gw)[None, :]
    return ids.reshape(gh * gw, 3)


def train_sigmas(n: int, g: torch.Generator, grid_fraction: float, steps: int = INFERENCE_STEPS) -> torch.Tensor:
    """Logit-normal(0, 1), except a `grid_fraction` share drawn from the sigmas of
    the `steps`-step Euler schedule (1, .75, .5, .25)."""
    ln = torch.sigmoid(torch.randn(n, generator=g))
    grid = torch.linspace(1.0, 1.0 / steps, steps)[torch.randint(0, steps, (n,), generator=g)]
    pick = torch.rand(n, generator=g) < grid_fraction
    return torch.where(pick, grid, ln)


def _lr(step: int, total: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_vae(
    vae,
    images: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    g: torch.Generator,
    kl_weight: float = 1e-6,
    crop_fraction: float = 0.8,
    log_every: int = 100,
) -> list[dict]:
    vae.train()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    hist = []
    for step in (bar := tqdm(range(steps), desc="vae", mininterval=5)):
        for pg in opt.param_groups:
            pg["lr"] = _lr(step, steps, lr)
        if step < crop_fraction * steps:
            # Conv nets are translation-equivariant: 32x32 crops (one quadrant's worth, aligned to
            # the 4x latent grid) teach the same thing at a quarter of the cost on CPU.
            idx = torch.randint(0, len(images), (batch_size,), generator=g)
            oy, ox = (4 * torch.randint(0, 9, (2,), generator=g)).tolist()
            x = to_tensor(images[idx.numpy(), oy : oy + 32, ox : ox + 32])
        else:  # finish on whole images: GroupNorm statistics are per image
            idx = torch.randint(0, len(images), (max(1, batch_size // 4),), generator=g)
            x = to_tensor(images[idx.numpy()])
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        rl = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        kl = post.kl().mean() / x[0].numel()
        loss = rl + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            loss, rl, kl = float(loss.detach()), float(rl.detach()), float(kl.detach())
            hist.append({"stage": "vae", "step": step, "loss": loss, "rec": rl, "kl": kl})
            bar.set_postfix(rec=f"{rl:.4f}")
            log.info("vae step %d rec %.4f kl %.3f", step, rl, kl)
    vae.eval()
    return hist


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Posterior means (deterministic; the KL is tiny so samples differ by little)."""
    return torch.cat(
        [vae.encode(to_tensor(images[i : i + batch_size])).latent_dist.mean for i in range(0, len(images), batch_size)]
    )


def tokenize(tok, captions: list[str]) -> torch.Tensor:
    return tok(
        captions, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids


def text_embeddings(pipe, clip_ids: torch.Tensor, t5_ids: torch.Tensor):
    """Exactly what FluxPipeline.encode_prompt computes: T5 last hidden states, CLIP pooled."""
    pooled = pipe.text_encoder(clip_ids, output_hidden_states=False).pooler_output
    states = pipe.text_encoder_2(t5_ids, output_hidden_states=False)[0]
    return states, pooled


def train_flow(
    pipe,
    latents: torch.Tensor,
    clip_ids: torch.Tensor,
    t5_ids: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    g: torch.Generator,
    *,
    grid_fraction: float,
    ema_decay: float = 0.995,
    log_every: int = 100,
) -> list[dict]:
    """Rectified flow on packed, normalised latents [N, L, C]; text encoders trained jointly."""
    modules = torch.nn.ModuleList([pipe.transformer, pipe.text_encoder, pipe.text_encoder_2])
    modules.train()
    params = [p for p in modules.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    ema = [p.detach().clone() for p in params]
    gh = gw = int(math.isqrt(latents.shape[1]))
    img_ids = image_ids(gh, gw)
    txt_ids = torch.zeros(MAX_SEQUENCE_LENGTH, 3)
    hist, run = [], []
    for step in (bar := tqdm(range(steps), desc="flow", mininterval=5)):
        for pg in opt.param_groups:
            pg["lr"] = _lr(step, steps, lr)
        idx = torch.randint(0, len(latents), (batch_size,), generator=g)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=g)
        sigma = train_sigmas(batch_size, g, grid_fraction=grid_fraction)
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        states, pooled = text_embeddings(pipe, clip_ids[idx], t5_ids[idx])
        v = pipe.transformer(
            hidden_states=xt,
            timestep=sigma,
            guidance=None,
            pooled_projections=pooled,
            encoder_hidden_states=states,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        loss = F.mse_loss(v, noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(ema_decay, (1 + step) / (10 + step))  # EMA warm-up
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - d)
        run.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            m = float(np.mean(run[-log_every:]))
            hist.append({"stage": "flow", "step": step, "loss": m})
            bar.set_postfix(loss=f"{m:.4f}")
            log.info("flow step %d loss %.4f", step, m)
    with torch.no_grad():  # sample with the EMA weights: smoother than the last iterate
        for e, p in zip(ema, params):
            p.copy_(e)
    modules.eval()
    return hist


def train_toy(
    out_dir: str | Path,
    recipe: ToyRecipe | None = None,
    *,
    init_from: str | Path | None = None,
    vae_batch_size: int = 32,
    vae_lr: float = 2e-3,
    annotator_images: int = 3000,
) -> dict:
    """Train the toy pipeline (VAE, text encoders, transformer) and the annotator; save the
    diffusers folder (plus ``annotator/`` and ``training.json``) atomically at `out_dir`.
    Returns the training summary. Deterministic given the recipe (its seed and thread count);
    `recipe` defaults to the one of the committed ``resources/toy-shapes`` (`ToyRecipe`).

    ``init_from``: continue from a folder this function wrote (same scenes; a fresh batch/noise
    stream; the VAE is kept and not retrained when ``vae_steps=0``). The summary records the
    whole chain, so a continued model is reproduced by replaying the same calls.
    ``annotator_steps=0`` with ``init_from`` and ``vae_steps=0``: the VAE is unchanged, so the
    annotator of ``init_from`` is copied instead of retrained (training it again is deterministic
    and gives the same one)."""
    r = recipe or ToyRecipe()
    seed, n_images, steps, batch_size, lr = r.seed, r.train_images, r.train_steps, r.batch_size, r.lr
    vae_steps, annotator_steps, size_overrides = r.vae_steps, r.annotator_steps, dict(r.size)
    from ..atomic import atomic_path
    from .annotate import train_annotator

    torch.set_num_threads(r.threads)  # the result depends on the thread count: the recipe fixes it
    t0 = time.time()
    torch.manual_seed(seed)
    previous = None
    g = torch.Generator().manual_seed(seed if init_from is None else seed + 7919)  # continuation: new batches
    scenes, captions, _ = sample_scenes(n_images, seed, TRAIN_DOMAIN, p_two=r.two_object_fraction, textures=r.textures)
    images, masks = render_batch(scenes, IMAGE_SIZE)
    log.info("rendered %d training scenes in %.1fs", n_images, time.time() - t0)

    if init_from is None:
        pipe = build_pipeline(seed, textures=r.textures, **size_overrides)
    else:
        from diffusers import FluxPipeline

        from .grammar import vocabulary
        from .tokenizers import build_tokenizer

        previous = json.loads((Path(init_from) / "training.json").read_text())
        previous.pop("history", None)
        pipe = FluxPipeline.from_pretrained(init_from)
        words = vocabulary(r.textures)  # the current tokenizers
        pipe.tokenizer = build_tokenizer("clip", MAX_SEQUENCE_LENGTH, words)
        pipe.tokenizer_2 = build_tokenizer("t5", MAX_SEQUENCE_LENGTH, words)
    hist = train_vae(pipe.vae, images, vae_steps, vae_batch_size, vae_lr, g) if vae_steps else []
    t_vae = time.time() - t0

    z = encode_latents(pipe.vae, images)
    if vae_steps or init_from is None:
        shift, scale = float(z.mean()), float(1.0 / z.std())
        pipe.vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    else:
        shift, scale = pipe.vae.config.shift_factor, pipe.vae.config.scaling_factor
    latents = pack((z - shift) * scale)
    log.info("latent shift %.4f scale %.4f", shift, scale)

    clip_ids, t5_ids = tokenize(pipe.tokenizer, captions), tokenize(pipe.tokenizer_2, captions)
    hist += train_flow(pipe, latents, clip_ids, t5_ids, steps, batch_size, lr, g, grid_fraction=r.grid_fraction)
    t_flow = time.time() - t0 - t_vae

    @torch.no_grad()
    def reconstruct(imgs: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                to_uint8(pipe.vae.decode(encode_latents(pipe.vae, imgs[i : i + 256])).sample)
                for i in range(0, len(imgs), 256)
            ]
        )

    # The annotator also learns from VAE reconstructions (the look of decoded images).
    if annotator_steps == 0:
        if init_from is None or vae_steps:
            raise ValueError("annotator_steps=0 needs init_from and vae_steps=0 (the annotator is copied)")
        from .annotate import Annotator

        annotator = Annotator.load(init_from)
        ann_report = dict(previous.get("annotator", {}), copied_from=str(init_from))
    else:
        na = min(n_images, annotator_images)
        annotator, ann_report = train_annotator(
            scenes[:na],
            images[:na],
            masks[:na],
            reconstruct(images[:na]),
            seed=seed,
            steps=annotator_steps,
            eval_recon_fn=reconstruct,
            textures=r.textures,
        )
    t_total = time.time() - t0
    summary = {
        "seed": seed,
        "n_images": n_images,
        "steps": steps,
        "vae_steps": vae_steps,
        "batch_size": batch_size,
        "lr": lr,
        "vae_lr": vae_lr,
        "annotator_steps": annotator_steps,
        "annotator_images": annotator_images,
        "size_overrides": size_overrides,
        "grid_fraction": r.grid_fraction,
        "two_object_fraction": r.two_object_fraction,
        **({"textures": True} if r.textures else {}),  # the default world's summary keeps its keys
        "torch_threads": torch.get_num_threads(),
        "seconds": {"vae": round(t_vae, 1), "flow": round(t_flow, 1), "total": round(t_total, 1)},
        "latent_shift": shift,
        "latent_scale": scale,
        "annotator": ann_report,
        "history": hist,
        "init_from": None if init_from is None else str(init_from),
        "previous": previous,
    }
    with atomic_path(out_dir, is_dir=True) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        annotator.save(tmp / "annotator")
        (tmp / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("saved %s (%.1fs)", out_dir, t_total)
    return summary
