"""Export to and import from the SAELens and sparsify folder formats, without the peer packages
(tests/test_interop_peers.py checks the same files against the packages' own code): round trips
give identical codes, the foldable SAELens options fold exactly, and every unreadable input or
inexpressible kind fails with a message naming what was found and what would work."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffdict.config import ConfigError
from diffdict.dictionaries import build, load_dictionary
from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.synthetic import planted
from diffdict.interop import (
    ExportError,
    PretrainedFormatError,
    export_dictionary,
    load_pretrained,
    peer_formats,
    pretrained_shape,
)
from diffdict.sites import Site

P = planted(d=16, n_atoms=32, k=2, seed=0)
SITE = {"block": "double", "index": 1, "stream": "img", "place": "resid", "steps": [0, 2]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A TopK SAE trained with per-dimension normalisation (folded at save: nontrivial weights)."""
    path = tmp_path_factory.mktemp("sae") / "dictionary.safetensors"
    d = build(
        "topk_sae",
        {"n_features": 32, "k": 3, "batch_size": 64, "tokens": 3200, "normalize": "dim"},
        P.factory(2000, batch=250),
        16,
        device="cpu",
        progress=False,
    )
    d.save(path, extra={**d.build_info, "site": "double1_img", "site_config": SITE})
    return path


def _same(a, b, x):
    ca, cb = a.encode(x), b.encode(x)
    torch.testing.assert_close(ca.to_dense(a.n_features), cb.to_dense(b.n_features), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.decode(ca), b.decode(cb), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["saelens", "sparsify"])
def test_export_then_import_gives_the_same_codes(trained, tmp_path, fmt):
    out = export_dictionary(trained, fmt, tmp_path / fmt, model_name="toy")
    back = load_pretrained(out, fmt)
    _same(load_dictionary(trained), back, P.sample(400, 5) * 3 + 1)
    assert pretrained_shape(out, fmt) == (16, 32, 3)
    cfg = json.loads((out / "cfg.json").read_text())
    where = cfg["metadata"] if fmt == "saelens" else cfg["diffdict"]
    assert where["hook_name"] == "transformer_blocks.1.out.img" and where["steps"] == [0, 2]
    assert where["diffdict_site"] == "double1_img" and where["model_name"] == "toy"


def test_hook_names_follow_the_hooked_module():
    names = {
        (b, p, s): Site.from_config("x", {"block": b, "index": 2, "place": p, "stream": s}).hook_name
        for b in ("double", "single")
        for p in ("resid", "mlp")
        for s in ("img", "txt")
    }
    assert names[("double", "mlp", "txt")] == "transformer_blocks.2.ff_context.net.2.in"
    assert names[("single", "mlp", "img")] == "single_transformer_blocks.2.act_mlp.out.img"
    assert names[("single", "resid", "txt")] == "single_transformer_blocks.2.out.txt"


def test_diffdict_format_reads_a_dictionary_file_and_overrides_k(trained):
    d = load_pretrained(trained, "diffdict", k=5)
    assert d.k == 5 and pretrained_shape(trained, "diffdict") == (16, 32, 3)


@pytest.fixture(scope="module")
def batch_topk(tmp_path_factory):
    """A BatchTopK SAE (its codes come from a learnt threshold, not k per token)."""
    path = tmp_path_factory.mktemp("btk") / "dictionary.safetensors"
    cfg = {"n_features": 32, "k": 3, "batch_size": 64, "tokens": 3200, "batch_topk": True}
    d = build("topk_sae", cfg, P.factory(2000, batch=250), 16, device="cpu", progress=False)
    d.save(path, extra={**d.build_info, "site": "double1_img", "site_config": SITE})
    return path


def test_batch_topk_exports_as_a_saelens_jumprelu_and_nowhere_else(batch_topk, tmp_path):
    out = export_dictionary(batch_topk, "saelens", tmp_path / "s")
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu" and "k" not in cfg
    w = load_file(str(out / "sae_weights.safetensors"))
    sae = load_dictionary(batch_topk)
    torch.testing.assert_close(w["threshold"], sae.threshold)
    with pytest.raises(ExportError, match=r"BatchTopK SAE's codes come from its threshold.*export it to saelens"):
        export_dictionary(batch_topk, "sparsify", tmp_path / "sp")
    assert not (tmp_path / "sp").exists()
    for read in (load_pretrained, pretrained_shape):  # refused at the config check too, not only in the job
        with pytest.raises(PretrainedFormatError, match=r"k cannot be overridden for a BatchTopK SAE"):
            read(batch_topk, "diffdict", k=5)


def test_batch_topk_comes_back_from_saelens_with_its_threshold_and_width(batch_topk, tmp_path):
    """The JumpReLU that the export wrote reads back as the same threshold SAE, its width from the metadata."""
    ours = load_dictionary(batch_topk)
    back = load_pretrained(export_dictionary(batch_topk, "saelens", tmp_path / "s"), "saelens")
    assert (back.batch_topk, back.k, back.max_k) == (True, ours.k, ours.max_k)
    torch.testing.assert_close(back.threshold, ours.threshold)
    x = P.sample(300, 5)
    torch.testing.assert_close(back.encode(x).to_dense(32), ours.encode(x).to_dense(32))
    assert pretrained_shape(tmp_path / "s", "saelens") == (16, 32, ours.max_k)


def _jumprelu_folder(path, seed=0):
    """A JumpReLU SAE as SAELens saves one: per-latent thresholds, no k."""
    w = _saelens_folder(path, {"architecture": "jumprelu"}, seed)
    w["threshold"] = torch.rand(24, generator=torch.Generator().manual_seed(seed + 1))
    save_file(w, str(path / "sae_weights.safetensors"))
    return w


def test_a_jumprelu_sae_reads_with_the_width_it_is_given(tmp_path):
    w = _jumprelu_folder(tmp_path / "s")
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(3))
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    z = pre.clamp_min(0) * (pre > w["threshold"])  # SAELens' JumpReLU
    sae = load_pretrained(tmp_path / "s", "saelens", k=24)  # every latent: SAELens' codes exactly
    assert sae.batch_topk and sae.max_k == 24 and pretrained_shape(tmp_path / "s", "saelens", k=24)[2] == 24
    torch.testing.assert_close(sae.encode(x).to_dense(24), z)
    torch.testing.assert_close(sae.decode(sae.encode(x)), z @ w["W_dec"] + w["b_dec"], rtol=1e-5, atol=1e-4)
    narrow = load_pretrained(tmp_path / "s", "saelens", k=2).encode(x).to_dense(24)  # a token's largest 2
    torch.testing.assert_close(narrow, z * (z >= z.topk(2, dim=1).values[:, 1:]))
    with pytest.raises(
        PretrainedFormatError, match=r"k=30, the most latents one token may keep, must be in 1..d_sae=24"
    ):
        load_pretrained(tmp_path / "s", "saelens", k=30)
    for read in (load_pretrained, pretrained_shape):  # a readable folder missing a setting: says only that
        with pytest.raises(PretrainedFormatError, match=r"^[^(]*: a JumpReLU SAE .*give k") as err:
            read(tmp_path / "s", "saelens")
        assert "not a readable" not in str(err.value)
    sae.save(tmp_path / "d.safetensors")  # what the `pretrained` kind's job writes: the thresholds stay per latent
    torch.testing.assert_close(load_dictionary(tmp_path / "d.safetensors").threshold, w["threshold"])


def test_peer_formats_leave_sparsify_out_for_batch_topk():
    assert peer_formats({"kind": "topk_sae"}) == ("saelens", "sparsify")
    assert peer_formats({"kind": "matryoshka_sae", "batch_topk": True}) == ("saelens",)


def _saelens_folder(path, cfg_extra, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": torch.randn(16, 24, generator=g),
        "b_enc": torch.randn(24, generator=g) * 0.1,
        "W_dec": torch.randn(24, 16, generator=g) * 2,
        "b_dec": torch.randn(16, generator=g),
    }
    path.mkdir()
    save_file(w, str(path / "sae_weights.safetensors"))
    cfg = {"architecture": "topk", "d_in": 16, "d_sae": 24, "k": 4, "normalize_activations": "none", **cfg_extra}
    (path / "cfg.json").write_text(json.dumps(cfg))
    return w


@pytest.mark.parametrize("b_dec_in", [True, False])
@pytest.mark.parametrize("rescale", [False, True])
def test_saelens_options_fold_exactly(tmp_path, b_dec_in, rescale):
    """SAELens' TopK forward written out by hand; the folded diffdict SAE must agree with it."""
    w = _saelens_folder(tmp_path / "s", {"apply_b_dec_to_input": b_dec_in, "rescale_acts_by_decoder_norm": rescale})
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(1)) * 2
    n = w["W_dec"].norm(dim=1)
    pre = (x - w["b_dec"] * b_dec_in) @ w["W_enc"] + w["b_enc"]
    pre = pre * n if rescale else pre
    v, i = pre.topk(4, dim=1)
    z = torch.zeros_like(pre).scatter(1, i, v.relu())
    x_hat = (z / n if rescale else z) @ w["W_dec"] + w["b_dec"]
    sae = load_pretrained(tmp_path / "s", "saelens")
    codes = sae.encode(x)
    torch.testing.assert_close(sae.decode(codes), x_hat, rtol=1e-5, atol=1e-4)
    # the codes are SAELens' z (rescaled ones measured in unit-decoder units, as SAELens reports them)
    torch.testing.assert_close(codes.to_dense(24), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"architecture": "gated"}, r"architecture 'gated' is not supported; diffdict reads topk, jumprelu"),
        ({"architecture": "jumprelu"}, r"a JumpReLU SAE keeps every latent above its threshold.*give k"),
        ({"normalize_activations": "expected_average_only_in"}, r"fold it first .*fold_activation_norm_scaling_factor"),
        ({"normalize_activations": "layer_norm"}, r"'layer_norm' keeps state outside the folder"),
    ],
)
def test_saelens_configs_it_cannot_read_say_why(tmp_path, cfg, match):
    _saelens_folder(tmp_path / "s", cfg)
    with pytest.raises(PretrainedFormatError, match=match):
        load_pretrained(tmp_path / "s", "saelens")
    with pytest.raises(PretrainedFormatError, match=match):
        pretrained_shape(tmp_path / "s", "saelens")


def test_unreadable_inputs_name_what_was_found(tmp_path, trained):
    with pytest.raises(PretrainedFormatError, match=r"unknown format 'hf'; valid formats: diffdict, saelens, sparsify"):
        load_pretrained(trained, "hf")
    with pytest.raises(PretrainedFormatError, match=r"not a folder; format 'sparsify' is a folder holding cfg.json"):
        load_pretrained(trained, "sparsify")
    layers = tmp_path / "run"
    (layers / "layers.3").mkdir(parents=True)
    (layers / "layers.3" / "cfg.json").write_text("{}")
    with pytest.raises(
        PretrainedFormatError, match=r"missing \['cfg.json', 'sae.safetensors'\].*\['layers.3'\] hold cfg.json"
    ):
        load_pretrained(layers, "sparsify")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "cfg.json").write_text(json.dumps({"d_in": 16, "num_latents": 8, "k": 2, "transcode": True}))
    (tmp_path / "t" / "sae.safetensors").write_bytes(b"")
    with pytest.raises(PretrainedFormatError, match=r"transcode=True is not supported"):
        pretrained_shape(tmp_path / "t", "sparsify")
    with pytest.raises(PretrainedFormatError, match=r"not a file; format 'diffdict'"):
        load_pretrained(tmp_path / "t", "diffdict")


def test_kinds_a_format_cannot_hold_name_the_ones_it_can(tmp_path):
    d = build("random", {"n_features": 8, "k": 2}, P.factory(100), 16)
    d.save(tmp_path / "r.safetensors")
    with pytest.raises(
        ExportError, match=r"a 'random' dictionary cannot be written as saelens \(it holds topk_sae only\)"
    ):
        export_dictionary(tmp_path / "r.safetensors", "saelens", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert issubclass(ExportError, ConfigError)  # the CLI reports it without a traceback


def test_pretrained_kind_builds_and_checks_d_model(trained, tmp_path):
    out = export_dictionary(trained, "sparsify", tmp_path / "sp")
    d = build("pretrained", {"path": str(out), "format": "sparsify"}, P.factory(10), 16, site_name="double1_img")
    assert isinstance(d, TopKSAE) and d.build_info["format"] == "sparsify" and d.build_info["kind"] == "pretrained"
    with pytest.raises(ValueError, match=r"reads d_model 16, but the site's activations have d_model 32"):
        build("pretrained", {"path": str(out), "format": "sparsify"}, P.factory(10), 32, site_name="double1_img")


def test_config_check_refuses_a_pretrained_sae_of_another_width(trained, tmp_path):
    """Before any job runs: the folder's cfg.json against the site's width, both numbers named."""
    from diffdict.config import check

    from workflow_utils import minimal_config

    cfg = minimal_config()
    out = export_dictionary(trained, "saelens", tmp_path / "s")
    cfg["dictionaries"]["theirs"] = {"kind": "pretrained", "format": "saelens", "path": str(out)}
    with pytest.raises(
        ConfigError,
        match=r"config.dictionaries.theirs: .* reads d_model 16 \(32 features\), "
        r"but site 'double1_img' has d_model 64",
    ):
        check(cfg)
    cfg["dictionaries"]["theirs"] = {"kind": "pretrained", "format": "sparsify", "path": str(out)}
    with pytest.raises(
        ConfigError,
        match=r"config.dictionaries.theirs: .* a sparsify folder needs cfg.json \+ "
        r"sae.safetensors; missing \['sae.safetensors'\]",
    ):
        check(cfg)
    cfg["dictionaries"]["theirs"] = {"kind": "pretrained", "format": "onnx", "path": str(out)}
    with pytest.raises(ConfigError, match=r"unknown format 'onnx'; valid: diffdict, saelens, sparsify"):
        check(cfg)
    cfg["dictionaries"]["theirs"] = {"kind": "pretrained", "format": "saelens"}
    with pytest.raises(ConfigError, match=r"theirs.path: required for kind 'pretrained'"):
        check(cfg)
    rand = build("random", {"n_features": 8, "k": 2}, planted(d=64, n_atoms=32, k=2).factory(100), 64)
    rand.save(tmp_path / "r.safetensors")  # right width, but a k override fits TopK SAEs only
    cfg["dictionaries"]["theirs"] = {"kind": "pretrained", "path": str(tmp_path / "r.safetensors"), "k": 4}
    with pytest.raises(
        ConfigError, match=r"theirs: .*r.safetensors: k can be overridden for TopK SAEs only, not 'random'"
    ):
        check(cfg)
