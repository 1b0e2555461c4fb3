"""The shapes world: scenes, renderer, caption grammar, tokenizers, tiny Flux pipeline,
training and the annotator of generated images.

Light imports only here (numpy, pandas); torch/diffusers load in the submodules that need them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .grammar import caption, vocabulary
from .render import render, render_batch
from .scene import CONCEPTS, P_TWO, Scene, sample_scene

# Stream domains: prompt tables and training renderings draw from different seed sequences, so
# a split's prompts and the toy model's training scenes are independent draws even for equal seeds.
PROMPTS_DOMAIN = 0x5052  # "PR"
TRAIN_DOMAIN = 0x5452  # "TR"


def sample_scenes(
    n: int, seed: int, domain: int = PROMPTS_DOMAIN, p_two: float = P_TWO, textures: bool = False
) -> tuple[list[Scene], list[str], np.ndarray]:
    """`n` scenes, their captions and per-item noise seeds, from one seeded stream; `p_two`:
    probability of a two-object scene; `textures`: the texture world."""
    rng = np.random.default_rng([domain, int(seed)])
    scenes, captions = [], []
    for _ in range(n):
        s = sample_scene(rng, p_two, textures)
        scenes.append(s)
        captions.append(caption(s, rng))
    noise_seeds = rng.integers(0, 2**31 - 1, size=n, dtype=np.int64)
    return scenes, captions, noise_seeds


def prompts_table(n: int, seed: int, start_id: int = 0, textures: bool = False) -> pd.DataFrame:
    """Prompt table of `n` world prompts: prompt_id (start_id..), prompt, seed (noise seed),
    concepts (list of "kind=value", all objects' concepts), scene (JSON); `textures`: the texture world."""
    scenes, captions, noise_seeds = sample_scenes(n, seed, PROMPTS_DOMAIN, textures=textures)
    return pd.DataFrame(
        {
            "prompt_id": np.arange(start_id, start_id + n, dtype=np.int64),
            "prompt": captions,
            "seed": noise_seeds.astype(np.int64),
            "concepts": [s.concepts() for s in scenes],
            "scene": [s.to_json() for s in scenes],
        }
    )


__all__ = [
    "CONCEPTS",
    "Scene",
    "caption",
    "prompts_table",
    "render",
    "render_batch",
    "sample_scene",
    "sample_scenes",
    "vocabulary",
]
