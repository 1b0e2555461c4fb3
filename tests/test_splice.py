"""Spliced-generation metric: known answers with an identity and a mean-ablating 'dictionary'."""

import pandas as pd
import pytest
import torch

from diffdict.metrics.splice import spliced_generation
from diffdict.model import generate_shard
from diffdict.model.tiny import tiny_pipeline
from diffdict.sites import Site

MODEL = dict(
    height=32, width=32, num_inference_steps=3, guidance_scale=0.0, max_sequence_length=8, batch_size=4, name="tiny"
)


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pipe = tiny_pipeline(0)
    prompts = pd.DataFrame(
        {
            "prompt_id": range(4),
            "prompt": ["a red circle", "a blue square", "a star", "a big triangle"],
            "seed": [1, 2, 3, 4],
        }
    )
    shard = tmp_path_factory.mktemp("splice") / "000.safetensors"
    generate_shard(pipe, prompts, MODEL, shard, progress=False)
    return pipe, shard


@pytest.mark.parametrize("stream", ["img", "txt"])
def test_identity_recovers_everything_and_mean_nothing(setup, stream):
    pipe, shard = setup
    site = Site("s", "double", 1, stream=stream, steps=(0, 1))
    d = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    mean = torch.randn(d)
    ident = spliced_generation(pipe, Fn(lambda x: x), site, shard, mean, MODEL)
    assert ident["effect_recovered_denoiser"] == pytest.approx(1.0, abs=1e-6)
    assert ident["effect_recovered_image"] == pytest.approx(1.0, abs=1e-4)
    assert ident["sse_ablate_denoiser"] > 0
    ablate = spliced_generation(pipe, Fn(lambda x: mean.expand_as(x)), site, shard, mean, MODEL)
    assert ablate["effect_recovered_denoiser"] == pytest.approx(0.0, abs=1e-6)
    assert ablate["effect_recovered_image"] == pytest.approx(0.0, abs=1e-6)


def test_halfway_reconstruction_is_in_between(setup):
    pipe, shard = setup
    site = Site("s", "single", 0, steps=(0,))
    d = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    mean = torch.zeros(d)
    half = spliced_generation(pipe, Fn(lambda x: 0.5 * x), site, shard, mean, MODEL)
    assert 0.0 < half["effect_recovered_denoiser"] < 1.0


def test_annotation_agreement_against_mean_ablation(setup):
    """An identity splice shows exactly what the clean images show (agreement 1); the clean
    images are annotated once per batch, not once per compared run."""
    pipe, shard = setup
    site = Site("s", "double", 1, steps=(0, 1))
    d = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    calls = []

    def annotate(images):  # "bright" vs "dark" by mean intensity: a stand-in annotator
        calls.append(len(images))
        return [{"bright"} if im.mean() > 127 else {"dark"} for im in images]

    ident = spliced_generation(pipe, Fn(lambda x: x), site, shard, torch.randn(d), MODEL, annotate=annotate)
    assert ident["agreement_splice"] == 1.0 and 0.0 <= ident["agreement_ablate"] <= 1.0
    assert len(calls) == 3  # clean, spliced, ablated: one batch of this shard
