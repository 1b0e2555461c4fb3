"""Offline loading (fp32 / NF4 on CPU), folder checks and config-only model geometry."""

import shutil

import pytest
import torch

from diffdict.model import (
    ModelFolderError,
    check_model_folder,
    load_pipeline,
    model_info,
    transformer_config_info,
)
from diffdict.model.tiny import tiny_pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny-flux"
    tiny_pipeline(0).save_pretrained(p)
    return p


def cfg(path, **kw):
    return {"kind": "flux", "path": str(path), "precision": "fp32", "device": "cpu", "cpu_offload": False, **kw}


def test_config_only_geometry_matches_loaded_model(folder):
    info = transformer_config_info(folder)
    assert info["n_double"] == 2 and info["n_single"] == 2 and info["d_model"] == 16
    assert info["mlp_hidden"] == 64 and info["vae_scale_factor"] == 2
    pipe = load_pipeline(cfg(folder))
    loaded = model_info(pipe.transformer)
    assert {k: loaded[k] for k in loaded} == {k: info[k] for k in loaded}


def test_load_fp32_round_trip(folder):
    ref = tiny_pipeline(0).transformer.state_dict()
    pipe = load_pipeline(cfg(folder))
    got = pipe.transformer.state_dict()
    assert all(torch.equal(got[k], v) for k, v in ref.items())
    assert pipe.transformer.dtype == torch.float32 and not pipe.transformer.training


def test_load_nf4_on_cpu(folder):
    import bitsandbytes as bnb

    pipe = load_pipeline(cfg(folder, precision="nf4", nf4_compute_dtype="fp32"))
    t = pipe.transformer
    n4 = sum(isinstance(m, bnb.nn.Linear4bit) for m in t.modules())
    plain = [n for n, m in t.named_modules() if type(m) is torch.nn.Linear]
    assert plain == ["proj_out"] and n4 > 20  # every single block's proj_out is quantised too
    out = pipe(
        prompt=["red circle"],
        height=32,
        width=32,
        num_inference_steps=1,
        guidance_scale=0.0,
        max_sequence_length=8,
        output_type="np",
    ).images
    assert out.shape == (1, 32, 32, 3) and torch.isfinite(torch.from_numpy(out)).all()
    # On CPUs with AVX512-BF16 bitsandbytes repacks weights for its packed kernel; layers whose
    # width the kernel cannot take keep the generic path instead of failing its assertion.
    from bitsandbytes.functional import has_avx512bf16

    from diffdict.model.nf4 import packed_cpu_path_ok

    layers = [m for m in t.modules() if isinstance(m, bnb.nn.Linear4bit)]
    packed = [m for m in layers if getattr(m.weight.quant_state, "packing_format_for_cpu", False)]
    assert all(packed_cpu_path_ok(m.in_features, m.out_features, m.weight.quant_state.blocksize) for m in packed)
    fits = [m for m in layers if packed_cpu_path_ok(m.in_features, m.out_features, m.weight.quant_state.blocksize)]
    assert len(packed) == (len(fits) if has_avx512bf16() else 0)


def test_nf4_matches_the_float_layer_on_any_cpu():
    """One NF4 layer whose shape the packed kernel takes and one it does not, against the float
    layers: the same answer (up to 4-bit error) whichever CPU kernel runs."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import has_avx512bf16

    from diffdict.model.nf4 import quantize_nf4

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 96), torch.nn.Linear(96, 40))
    x = torch.randn(5, 128)
    ref = model(x).detach()
    q = quantize_nf4(model, compute_dtype=torch.float32, skip=()).eval()
    assert all(isinstance(m, bnb.nn.Linear4bit) for m in q)
    with torch.no_grad():
        out = q(x)
    assert torch.isfinite(out).all()
    assert (out - ref).norm() / ref.norm() < 0.15  # NF4 error, not a wrong kernel
    assert q[1].support_avx512bf16_for_cpu is False  # 40 rows: the generic path
    if has_avx512bf16():  # 128 -> 96 fits the packed kernel, and it ran
        assert getattr(q[0].weight.quant_state, "packing_format_for_cpu", False)


def test_incomplete_folder_names_missing_files(folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    for f in (broken / "transformer").glob("*.safetensors"):
        f.unlink()
    (broken / "vae" / "config.json").unlink()
    assert sorted(m.split("/")[-2:][0] for m in check_model_folder(broken)) == ["transformer", "vae"]
    with pytest.raises(
        ModelFolderError,
        match=r"incomplete; missing: .*transformer/\*\.safetensors.*vae/config.json"
        r".*huggingface-cli download black-forest-labs/FLUX.1-schnell",
    ):
        load_pipeline(cfg(broken))


def test_missing_folder_and_uncached_repo(tmp_path, monkeypatch):
    with pytest.raises(ModelFolderError, match="does not exist.*huggingface-cli download"):
        load_pipeline(cfg(tmp_path / "nothing-here"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match="model_index.json"):
        load_pipeline(cfg(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(
        ModelFolderError,
        match="nor in the Hugging Face cache.*huggingface-cli download black-forest-labs/FLUX.1-schnell",
    ):
        transformer_config_info("black-forest-labs/FLUX.1-schnell")


def test_bad_choices_named(folder):
    with pytest.raises(ValueError, match=r"precision 'fp8' is not one of \['fp32', 'bf16', 'nf4'\]"):
        load_pipeline(cfg(folder, precision="fp8"))
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_pipeline(cfg(folder, device="cuda:0"))


def test_nf4_quantisation_error_and_memory():
    import copy

    from diffdict.model.nf4 import linear_weight_bytes, quantize_nf4
    from diffdict.model.tiny import tiny_transformer

    base = tiny_transformer(0, attention_head_dim=32, num_attention_heads=2)
    q = quantize_nf4(copy.deepcopy(base), torch.float32, "cpu")
    x = dict(
        hidden_states=torch.randn(1, 16, 16),
        encoder_hidden_states=torch.randn(1, 4, 32),
        pooled_projections=torch.randn(1, 16),
        timestep=torch.tensor([0.5]),
        img_ids=torch.zeros(16, 3),
        txt_ids=torch.zeros(4, 3),
        return_dict=False,
    )
    with torch.no_grad():
        y0, y1 = base(**x)[0], q(**x)[0]
    err = float((y1 - y0).norm() / y0.norm())
    assert 0 < err < 0.2
    bf16_bytes = (linear_weight_bytes(base)["float"] - base.proj_out.weight.numel() * 4) / 2
    # 4 bits of 16 plus the per-block absmax and code tables (relatively larger on tiny layers)
    assert 0.25 <= linear_weight_bytes(q)["quantized"] / bf16_bytes < 0.35
