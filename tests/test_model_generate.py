"""Sharded generation and capture by trajectory replay on a tiny random FluxPipeline."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open

from diffdict.model import (
    capture,
    generate_shard,
    read_shard,
    record_site,
    replay_inputs,
    run_to_site,
)
from diffdict.model.tiny import tiny_pipeline
from diffdict.sites import Site
from diffdict.store import ActivationStore

CFG = dict(name="tiny", height=32, width=32, num_inference_steps=3, guidance_scale=0.0, max_sequence_length=12)
PROMPTS = pd.DataFrame(
    {
        "prompt_id": [10, 11, 12, 13, 14],
        "prompt": [
            "red circle",
            "a big blue square on dark background",
            "star",
            "green triangle on light",
            "small star",
        ],
        "seed": [1, 2, 3, 4, 5],
    }
)
SITES = [
    Site("d1", "double", 1, "img", "resid", steps=(0, 2)),
    Site("s0t", "single", 0, "txt", "resid", steps=(1,)),
    Site("d0m", "double", 0, "img", "mlp", steps=(0,)),
    Site("s1m", "single", 1, "txt", "mlp", steps=(0, 1)),
]


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline(0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def generated(pipe, tmp_path_factory):
    """One shard generated in batches of 2, with every test site recorded during generation."""
    out = tmp_path_factory.mktemp("gen") / "000.safetensors"
    recs = {}
    import contextlib

    with contextlib.ExitStack() as stack:
        for s in SITES:
            recs[s.name] = stack.enter_context(record_site(pipe.transformer, s))
        generate_shard(pipe, PROMPTS, CFG, out, batch_size=2)
    return out, recs


def test_shard_format(generated):
    path, _ = generated
    t, meta = read_shard(path)
    B, S, L = 5, 3, 64
    assert t["prompt_id"].tolist() == PROMPTS["prompt_id"].tolist() and t["prompt_id"].dtype == torch.int64
    assert t["latents"].shape == (S + 1, B, L, 16) and t["latents"].dtype == torch.float32
    assert t["timesteps"].shape == (S,) and t["timesteps"].dtype == torch.float32
    assert float(t["timesteps"][0]) == pytest.approx(1.0)  # already divided by 1000
    assert t["guidance"].shape == (B,) and not t["guidance"].any()
    assert t["prompt_embeds"].shape == (B, 12, 32)
    assert t["pooled_prompt_embeds"].shape == (B, 16)
    assert t["images"].shape == (B, 32, 32, 3) and t["images"].dtype == torch.uint8
    mask = t["text_mask"]
    assert mask.dtype == torch.bool
    # "red circle" -> 2 words + EOS; padding is False
    assert mask.sum(1).tolist() == [3, 8, 2, 5, 3]
    assert meta["grid"] == [8, 8] and meta["steps"] == 3 and meta["model"] == "tiny"
    with safe_open(str(path), "pt") as f:
        assert set(json.loads(f.metadata()["diffdict"])) >= {"height", "width", "steps", "model"}


def test_noise_independent_of_batching(pipe, generated, tmp_path):
    path, _ = generated
    alone = tmp_path / "x.safetensors"
    generate_shard(pipe, PROMPTS.iloc[[3]], CFG, alone, batch_size=1)
    a, _ = read_shard(alone)
    b, _ = read_shard(path)
    assert torch.equal(a["latents"][0, 0], b["latents"][0, 3])  # same initial noise
    torch.testing.assert_close(a["latents"][-1, 0], b["latents"][-1, 3], atol=1e-4, rtol=1e-4)
    assert torch.equal(a["timesteps"], b["timesteps"])


def test_replay_equals_generation_exactly(pipe, generated):
    path, recs = generated
    shard, meta = read_shard(path)
    for s in SITES:
        got = dict()
        for step in s.steps:
            for b0 in range(0, 5, 2):
                rows = slice(b0, min(b0 + 2, 5))
                x = run_to_site(
                    pipe.transformer, s, replay_inputs(shard, step, rows, meta["grid"], "cpu", torch.float32, False)
                )
                got[(step, b0)] = x
        during = [x for st, x in recs[s.name] if st in s.steps]
        # generation order: batch-major, step-minor
        order = [(st, b0) for b0 in range(0, 5, 2) for st in range(3) if st in s.steps]
        assert len(during) == len(order)
        for key, x in zip(order, during):
            assert torch.equal(got[key], x), (s.name, key)


@pytest.mark.parametrize("site", SITES, ids=lambda s: s.name)
def test_capture_store_matches_generation(pipe, generated, tmp_path, site):
    path, recs = generated
    out = tmp_path / "a.zarr"
    n = capture(pipe, path, site, out, split="interp")
    store = ActivationStore.open(out)
    shard, _ = read_shard(path)
    mask = shard["text_mask"]
    per_img = 64 if site.stream == "img" else mask.sum(1)
    expect = (per_img * 5 if site.stream == "img" else int(per_img.sum())) * len(site.steps)
    assert n == len(store) == expect
    assert store.d_model == (64 if site.place == "mlp" else 16)
    assert store.attrs["site"]["name"] == site.name and store.attrs["grid"] == [8, 8]
    meta = store.meta()
    # all rows of prompt 11 at the first step equal the generation-time activations (float16)
    during = [x for st, x in recs[site.name] if st == site.steps[0]][0]  # batch 0 = prompts 10, 11
    sel = ((meta.prompt_id == 11) & (meta.step == site.steps[0])).to_numpy()
    tok = meta.token.to_numpy()[sel]
    assert torch.equal(store.read(np.flatnonzero(sel)), during[1, tok].half().float())
    if site.stream == "txt":
        assert tok.tolist() == list(range(int(mask[1].sum())))  # padding dropped


def test_capture_subsamples_tokens_seeded(pipe, generated, tmp_path):
    path, _ = generated
    s = SITES[0]
    capture(pipe, path, s, tmp_path / "a.zarr", tokens_per_image=7, seed=3)
    capture(pipe, path, s, tmp_path / "b.zarr", tokens_per_image=7, seed=3, batch_size=5)
    capture(pipe, path, s, tmp_path / "c.zarr", tokens_per_image=7, seed=4)
    a, b, c = (ActivationStore.open(tmp_path / f"{k}.zarr") for k in "abc")
    assert len(a) == 5 * 2 * 7
    ma = a.meta()
    assert ma.groupby(["prompt_id", "step"]).token.nunique().eq(7).all()
    assert ma.equals(b.meta())  # replay batch size does not change the sample
    torch.testing.assert_close(a.read(slice(None)), b.read(slice(None)), atol=2e-3, rtol=1e-3)
    assert not ma.token.equals(c.meta().token)


def test_capture_bad_inputs(pipe, generated, tmp_path):
    path, _ = generated
    from diffdict.model import SiteError

    with pytest.raises(SiteError, match="valid: 0..1"):
        capture(pipe, path, Site("x", "single", 9), tmp_path / "x.zarr")
    with pytest.raises(ValueError, match=r"steps \[3\] are outside the 3-step schedule"):
        capture(pipe, path, Site("x", "double", 0, steps=(0, 3)), tmp_path / "x.zarr")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        capture(pipe, tmp_path / "nope.safetensors", SITES[0], tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


def test_generate_rejects_bad_table(pipe, tmp_path):
    with pytest.raises(ValueError, match="seed"):
        generate_shard(pipe, PROMPTS.drop(columns="seed"), CFG, tmp_path / "x.safetensors")


def test_bf16_shard_replays_exactly(tmp_path):
    pipe = tiny_pipeline(1).to(torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    s = Site("s1", "single", 1, "img", "resid", steps=(1,))
    with record_site(pipe.transformer, s, steps={1}) as rec:
        generate_shard(pipe, PROMPTS.iloc[:2], CFG, tmp_path / "b.safetensors", batch_size=2)
    t, meta = read_shard(tmp_path / "b.safetensors")
    assert t["prompt_embeds"].dtype == torch.bfloat16 and t["latents"].dtype == torch.float32
    capture(pipe, tmp_path / "b.safetensors", s, tmp_path / "b.zarr", dtype="bfloat16")
    store = ActivationStore.open(tmp_path / "b.zarr")
    assert store.attrs["dtype"] == "bfloat16"
    assert torch.equal(store.read(slice(None)).reshape(2, 64, 16), rec[0][1].float())


def test_steering_site_of_neurons_is_their_blocks_output_with_its_replayed_norm(pipe, generated):
    """An mlp site steers its block's output (resid), in units of that output's mean token norm,
    measured by replaying the first rows of a shard: equal to the norms recorded in generation."""
    import dataclasses

    from diffdict.model import mean_token_norm
    from diffdict.steering.scale import steering_site

    path, recs = generated
    resid_site = SITES[0]  # double block 1, img, resid at steps 0 and 2
    assert steering_site(pipe, resid_site, path) == (resid_site, None)  # its own store gives the unit
    site, unit = steering_site(pipe, dataclasses.replace(resid_site, place="mlp"), path)
    assert site == resid_site
    # all 5 rows (fewer than the 8 replayed), recorded in generation batches of 2
    per_step = {s: torch.cat([x for st, x in recs[resid_site.name] if st == s]) for s in resid_site.steps}
    expected = sum(mean_token_norm(x) for x in per_step.values()) / len(per_step)
    assert unit == pytest.approx(expected, rel=1e-5)
