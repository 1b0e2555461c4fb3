"""The tiny Flux pipeline: geometry, generation, save/load, training-step determinism."""

import numpy as np
import pytest
import torch

from diffdict.world.pipeline import build_pipeline, transformer_config

GEN = dict(num_inference_steps=4, guidance_scale=0.0, height=64, width=64, max_sequence_length=16, output_type="np")


@pytest.fixture(scope="module")
def pipe():
    p = build_pipeline(seed=0)
    p.set_progress_bar_config(disable=True)
    return p


def test_geometry(pipe):
    cfg = pipe.transformer.config
    assert cfg.num_layers >= 2 and cfg.num_single_layers >= 2 and not cfg.guidance_embeds
    assert pipe.vae_scale_factor == 4 and cfg.in_channels == 4 * pipe.vae.config.latent_channels
    assert {k: v for k, v in transformer_config().items()} == {
        k: cfg[k] if k != "axes_dims_rope" else tuple(cfg[k]) for k in transformer_config()
    }
    latents = {}

    def grab(p, i, t, kw):
        latents[i] = kw["latents"]
        return kw

    pipe(
        prompt="a small red circle at the top-left on a dark background",
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=grab,
        **GEN,
    )
    assert sorted(latents) == [0, 1, 2, 3] and latents[0].shape == (1, 64, 16)  # 8x8 image tokens


def test_save_load_round_trip(pipe, tmp_path):
    from diffusers import FluxPipeline

    pipe.save_pretrained(tmp_path / "toy")
    loaded = FluxPipeline.from_pretrained(tmp_path / "toy")
    loaded.set_progress_bar_config(disable=True)
    prompts = [
        "a big blue cross in the lower-right corner on a light background",
        "gray background with a little green square at the top-right",
    ]
    a = pipe(prompt=prompts, generator=torch.Generator().manual_seed(1), **GEN).images
    b = loaded(prompt=prompts, generator=torch.Generator().manual_seed(1), **GEN).images
    assert a.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert loaded.tokenizer_2.decode(loaded.tokenizer_2(prompts[0]).input_ids, skip_special_tokens=True) == prompts[0]


def test_flow_training_steps_are_deterministic():
    from diffdict.world import sample_scenes
    from diffdict.world import train as T

    _, caps, _ = sample_scenes(8, 0)
    out = []
    for _ in range(2):
        p = build_pipeline(seed=5)
        g = torch.Generator().manual_seed(0)
        lat = torch.randn(8, 64, 16, generator=torch.Generator().manual_seed(1))
        ids = T.tokenize(p.tokenizer, caps), T.tokenize(p.tokenizer_2, caps)
        h = T.train_flow(p, lat, *ids, 2, 4, 1e-3, g, grid_fraction=0.5, log_every=1)
        out.append((h[-1]["loss"], p.transformer.proj_out.weight.detach().clone()))
    assert out[0][0] == out[1][0] and torch.equal(out[0][1], out[1][1])
    s = T.train_sigmas(4000, torch.Generator().manual_seed(0), grid_fraction=0.5)
    on_grid = ((s == 0.25) | (s == 0.5) | (s == 0.75) | (s == 1)).float().mean()
    assert 0 < s.min() and s.max() <= 1 and 0.45 < on_grid < 0.55


def test_train_toy_cli_writes_a_loadable_pipeline_from_the_world_config(tmp_path):
    """The `train_toy_model` rule's command, on a tiny world config (the rest: the recipe's defaults)."""
    import json

    from diffusers import FluxPipeline

    from diffdict.cli import main
    from diffdict.world.annotate import Annotator
    from diffdict.world.recipe import ToyRecipe

    world = {
        "seed": 3,
        "train_images": 64,
        "train_steps": 2,
        "vae_steps": 2,
        "annotator_steps": 2,
        "batch_size": 4,
        "size": {"attention_head_dim": 8, "num_attention_heads": 2, "num_layers": 2, "num_single_layers": 2},
    }
    out = tmp_path / "toy"
    assert (
        main(["train-toy", "--world", json.dumps(world), "--model", json.dumps({"kind": "toy"}), "--out", str(out)])
        == 0
    )
    pipe = FluxPipeline.from_pretrained(out)
    assert pipe.transformer.config.attention_head_dim == 8 and tuple(pipe.transformer.config.axes_dims_rope) == (
        4,
        2,
        2,
    )
    assert Annotator.load(out).concepts
    summary = json.loads((out / "training.json").read_text())
    assert summary["seed"] == 3 and summary["steps"] == 2 and summary["size_overrides"]["num_attention_heads"] == 2
    assert summary["grid_fraction"] == ToyRecipe().grid_fraction  # a default, from the recipe
