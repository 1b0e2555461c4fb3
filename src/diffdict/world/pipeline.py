"""The tiny Flux-architecture pipeline of the shapes world (real diffusers/transformers classes).

Geometry: 64x64 RGB -> VAE with 4x downsampling (3 levels) -> 4x16x16 latents -> Flux packs
2x2 latent patches -> 8x8 = 64 image tokens of 16 channels. Text: word-level tokenizers over the
world's vocabulary, a small CLIP (pooled vector) and a small T5 encoder (per-token states).
"""

from __future__ import annotations

import torch

from .grammar import vocabulary
from .tokenizers import SPECIALS, build_tokenizer, vocab_ids

IMAGE_SIZE = 64
MAX_SEQUENCE_LENGTH = 16

VAE_DEFAULTS = dict(block_out_channels=(16, 32, 32), latent_channels=4, layers_per_block=1, norm_num_groups=8)
TEXT_DEFAULTS = dict(clip_dim=32, t5_dim=64, text_layers=2)
TRANSFORMER_DEFAULTS = dict(num_layers=2, num_single_layers=2, attention_head_dim=32, num_attention_heads=2)


def _split(over: dict, defaults: dict) -> dict:
    return {k: over.pop(k, v) for k, v in defaults.items()}


def transformer_config(**over) -> dict:
    """The toy FluxTransformer2DModel config (no weights). Keys of ``TRANSFORMER_DEFAULTS``,
    ``latent_channels``, ``t5_dim`` and ``clip_dim`` may be overridden."""
    over = dict(over)
    t = _split(over, TRANSFORMER_DEFAULTS)
    text = _split(over, TEXT_DEFAULTS)
    latent_channels = over.pop("latent_channels", VAE_DEFAULTS["latent_channels"])
    hd = t["attention_head_dim"]
    # Rotary axes (text-id, row, col) must be even and sum to the head dim. The toy's text-id axis
    # is constant (all ids 0), so rows and columns get all but 2-4 dims: with theta 10^4 only the
    # fastest few frequencies resolve an 8x8 grid, and shapes need fine relative positions.
    b = 2 * ((hd - 2) // 4)
    a = hd - 2 * b
    cfg = dict(
        patch_size=1,
        in_channels=4 * latent_channels,
        out_channels=None,
        num_layers=t["num_layers"],
        num_single_layers=t["num_single_layers"],
        attention_head_dim=hd,
        num_attention_heads=t["num_attention_heads"],
        joint_attention_dim=text["t5_dim"],
        pooled_projection_dim=text["clip_dim"],
        guidance_embeds=False,  # schnell-style: no guidance embedding, guidance_scale 0
        axes_dims_rope=(a, b, b),
    )
    cfg.update(over)
    return cfg


def vae_config(**over) -> dict:
    v = _split(dict(over), VAE_DEFAULTS)
    n = len(v["block_out_channels"])
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(v["block_out_channels"]),
        layers_per_block=v["layers_per_block"],
        latent_channels=v["latent_channels"],
        norm_num_groups=v["norm_num_groups"],
        sample_size=IMAGE_SIZE,
        scaling_factor=1.0,
        shift_factor=0.0,  # set from latent statistics after VAE training
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,  # flat shapes need no global attention in the VAE; CPU speed
    )


def build_text_encoders(
    seed: int = 0, clip_dim: int = 32, t5_dim: int = 64, text_layers: int = 2, textures: bool = False
):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    n_vocab = len(vocab_ids(vocabulary(textures)))
    ids = {s: i for i, s in enumerate(SPECIALS)}
    torch.manual_seed(seed + 1)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=n_vocab,
            hidden_size=clip_dim,
            intermediate_size=2 * clip_dim,
            num_hidden_layers=text_layers,
            num_attention_heads=2,
            max_position_embeddings=MAX_SEQUENCE_LENGTH,
            projection_dim=clip_dim,
            pad_token_id=ids["<pad>"],
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
        )
    )
    torch.manual_seed(seed + 2)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=n_vocab,
            d_model=t5_dim,
            d_kv=t5_dim // 4,
            d_ff=2 * t5_dim,
            num_layers=text_layers,
            num_heads=4,
            pad_token_id=ids["<pad>"],
            eos_token_id=ids["</s>"],
            decoder_start_token_id=ids["<pad>"],
            relative_attention_num_buckets=16,
            relative_attention_max_distance=32,
        )
    )
    return clip.eval(), t5.eval()


def build_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # shift 1, no resolution-dependent shift: one image size, the sigmas FluxPipeline passes are used as is.
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)


def build_pipeline(seed: int = 0, textures: bool = False, **size_overrides):
    """A randomly initialised tiny FluxPipeline with the world's tokenizers (`textures`: the
    texture world's vocabulary).

    ``size_overrides``: ``block_out_channels``, ``latent_channels``, ``layers_per_block``,
    ``norm_num_groups`` (VAE); ``clip_dim``, ``t5_dim``, ``text_layers`` (text encoders);
    ``num_layers``, ``num_single_layers``, ``attention_head_dim``, ``num_attention_heads``
    (transformer)."""
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel

    over = dict(size_overrides)
    vae_over = _split(over, {k: v for k, v in VAE_DEFAULTS.items()})
    text = _split(over, TEXT_DEFAULTS)
    t_over = _split(over, TRANSFORMER_DEFAULTS)
    if over:
        valid = sorted(set(VAE_DEFAULTS) | set(TEXT_DEFAULTS) | set(TRANSFORMER_DEFAULTS))
        raise ValueError(f"unknown size overrides {sorted(over)}; valid: {valid}")
    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_config(**vae_over)).eval()
    words = vocabulary(textures)
    clip, t5 = build_text_encoders(seed, **text, textures=textures)
    torch.manual_seed(seed + 3)
    transformer = FluxTransformer2DModel(
        **transformer_config(**t_over, latent_channels=vae_over["latent_channels"], **text)
    ).eval()
    return FluxPipeline(
        scheduler=build_scheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=build_tokenizer("clip", MAX_SEQUENCE_LENGTH, words),
        text_encoder_2=t5,
        tokenizer_2=build_tokenizer("t5", MAX_SEQUENCE_LENGTH, words),
        transformer=transformer,
    )
