"""The toy model's training recipe: the `world` config section, typed, with its defaults.

The defaults are the recipe of the committed ``resources/toy-shapes`` (its ``training.json``
records the same values), so a config that leaves `world` out describes the committed model, and
the `train_toy_model` rule would retrain exactly it (about 40 min on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import resolve, setting

# `world.size`: pipeline size overrides, checked by the schema (defaults: diffdict.world.pipeline)
SIZE_KEYS = {
    "num_layers": {"type": "integer", "minimum": 1},
    "num_single_layers": {"type": "integer", "minimum": 1},
    "attention_head_dim": {"type": "integer", "minimum": 8, "multipleOf": 4},
    "num_attention_heads": {"type": "integer", "minimum": 1},
    "block_out_channels": {"type": "array", "items": {"type": "integer", "minimum": 8}},
    "latent_channels": {"type": "integer", "minimum": 1},
    "clip_dim": {"type": "integer", "minimum": 8},
    "t5_dim": {"type": "integer", "minimum": 8},
    "text_layers": {"type": "integer", "minimum": 1},
}


@dataclass(frozen=True)
class ToyRecipe:
    """How `train_toy` trains the shapes-world pipeline (the `world` config section, toy only)."""

    seed: int = setting(0, "seeds the training scenes, the initialisation and the batches")
    train_images: int = setting(6000, "renderings the toy model learns from", minimum=64)
    train_steps: int = setting(11000, "transformer and text-encoder steps (rectified flow)", minimum=1)
    vae_steps: int = setting(800, "VAE training steps", minimum=1)
    annotator_steps: int = setting(800, "training steps of the annotator's classifier", minimum=1)
    lr: float = setting(0.003, "transformer learning rate", exclusiveMinimum=0)
    batch_size: int = setting(64, "images per transformer step", minimum=1)
    grid_fraction: float = setting(
        0.6, "share of training noise levels at the 4 inference sigmas (the rest logit-normal)", minimum=0, maximum=1
    )
    two_object_fraction: float = setting(
        0.65,
        "share of two-object training scenes: binding two objects is the hard part, so it is "
        "over-sampled (prompt tables keep 0.35)",
        minimum=0,
        maximum=1,
    )
    textures: bool = setting(
        False,
        "the texture world: every object also has a surface texture (plain, striped, checked, dotted) named in "
        "its caption, a categorical concept each token carries by itself (pair with prompts.textures)",
    )
    threads: int = setting(
        2, "torch threads; the committed weights were trained with 2 (results differ by thread count)", minimum=1
    )
    size: dict = setting(
        {},
        "pipeline size overrides (defaults: width 64 = 2 heads of 32, 2 double + 2 single blocks)",
        properties=SIZE_KEYS,
        additionalProperties=False,
    )

    @classmethod
    def from_config(cls, world: dict[str, Any] | None) -> ToyRecipe:
        """The recipe of a `world` section (missing keys take their defaults)."""
        return cls(**resolve(cls, world, "world"))
