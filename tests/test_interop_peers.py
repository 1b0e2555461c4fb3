"""Round trips against the real peer packages (pinned in requirements-peers.txt, installed by
`make test`): diffdict's exports load in SAELens' and sparsify's own loaders and give the same
codes and reconstructions; folders written by each package's own save functions load in
diffdict and give the packages' numbers. Tolerance: 1e-5 relative (float32, different kernels)."""

from __future__ import annotations

import pytest
import torch
from peers import require_peer

from diffdict.dictionaries import build, load_dictionary
from diffdict.dictionaries.synthetic import planted
from diffdict.interop import export_dictionary, load_pretrained

sae_lens = require_peer("sae_lens")
sparsify = require_peer("sparsify")

P = planted(d=16, n_atoms=32, k=2, seed=0)
SITE = {"block": "double", "index": 1, "stream": "img", "place": "resid", "steps": [0]}
X = P.sample(500, 7) * 3 + 0.5


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _dense(values, indices, n):
    return torch.zeros(values.shape[0], n).scatter_add_(1, indices, values)


@pytest.fixture(scope="module", params=["dim", "scalar"])
def trained(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("sae") / "dictionary.safetensors"
    d = build(
        "topk_sae",
        {"n_features": 32, "k": 3, "batch_size": 64, "tokens": 3200, "normalize": request.param},
        P.factory(2000, batch=250),
        16,
        device="cpu",
        progress=False,
    )
    d.save(path, extra={**d.build_info, "site": "double1_img", "site_config": SITE})
    return path


def _same_as_saelens(ours, theirs):
    """A SAELens SAE loaded from diffdict's export gives diffdict's codes and reconstructions on X."""
    codes = ours.encode(X)
    with torch.no_grad():
        z = theirs.encode(X)
        x_hat = theirs.decode(z)
    assert _rel(codes.to_dense(ours.n_features), z) <= 1e-5
    assert _rel(ours.decode(codes), x_hat) <= 1e-5


def test_export_loads_in_saelens_with_the_same_numbers(trained, tmp_path):
    from sae_lens import SAE

    ours = load_dictionary(trained)
    theirs = SAE.load_from_disk(export_dictionary(trained, "saelens", tmp_path / "s", model_name="toy"))
    assert theirs.cfg.architecture() == "topk" and theirs.cfg.metadata.hook_name == "transformer_blocks.1.out.img"
    _same_as_saelens(ours, theirs)


def test_batch_topk_export_loads_in_saelens_as_a_jumprelu_with_the_same_numbers(tmp_path):
    from sae_lens import SAE

    path = tmp_path / "dictionary.safetensors"
    # max_k = every latent: no cap, so the codes must agree on any input (SAELens' JumpReLU has none)
    cfg = {"n_features": 32, "k": 3, "batch_size": 64, "tokens": 3200, "batch_topk": True, "max_k": 32}
    build("topk_sae", cfg, P.factory(2000, batch=250), 16, device="cpu", progress=False).save(path)
    ours = load_dictionary(path)
    theirs = SAE.load_from_disk(export_dictionary(path, "saelens", tmp_path / "s"))
    assert theirs.cfg.architecture() == "jumprelu"
    _same_as_saelens(ours, theirs)


def test_export_loads_in_sparsify_with_the_same_numbers(trained, tmp_path):
    from sparsify import SparseCoder

    ours = load_dictionary(trained)
    theirs = SparseCoder.load_from_disk(export_dictionary(trained, "sparsify", tmp_path / "s"))
    codes = ours.encode(X)
    with torch.no_grad():
        enc = theirs.encode(X)
        x_hat = theirs.decode(enc.top_acts, enc.top_indices)
    assert _rel(codes.to_dense(ours.n_features), _dense(enc.top_acts, enc.top_indices, ours.n_features)) <= 1e-5
    assert _rel(ours.decode(codes), x_hat) <= 1e-5


def _randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 1.0))


@pytest.mark.parametrize("b_dec_in, rescale", [(True, False), (False, False), (True, True)])
def test_saelens_save_model_loads_with_saelens_numbers(tmp_path, b_dec_in, rescale):
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    theirs = TopKSAE(
        TopKSAEConfig(d_in=16, d_sae=40, k=4, apply_b_dec_to_input=b_dec_in, rescale_acts_by_decoder_norm=rescale)
    )
    _randomise(theirs, 3)
    theirs.save_model(tmp_path / "s")
    ours = load_pretrained(tmp_path / "s", "saelens")
    with torch.no_grad():
        x_hat = theirs(X)
    assert _rel(ours.decode(ours.encode(X)), x_hat) <= 1e-5


def test_saelens_training_sae_inference_save_loads(tmp_path):
    """What a SAELens training run writes (rescaled decoder norms folded by save_inference_model)."""
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    theirs = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=16, d_sae=40, k=4))
    _randomise(theirs, 4)
    with torch.no_grad():
        x_hat = theirs.decode(theirs.encode(X))
    theirs.save_inference_model(tmp_path / "s")
    ours = load_pretrained(tmp_path / "s", "saelens")
    assert _rel(ours.decode(ours.encode(X)), x_hat) <= 1e-5


def test_saelens_jumprelu_save_model_loads_with_saelens_numbers(tmp_path):
    """A JumpReLU SAE as SAELens writes one (per-latent thresholds), read with every latent as its width."""
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig

    theirs = JumpReLUSAE(JumpReLUSAEConfig(d_in=16, d_sae=40))
    _randomise(theirs, 6)
    with torch.no_grad():
        theirs.threshold.zero_()
        relu = theirs.encode(X)
        theirs.threshold.copy_(torch.rand(40, generator=torch.Generator().manual_seed(7)) * 10)
        z = theirs.encode(X)
        x_hat = theirs.decode(z)
    assert 0 < int((z > 0).sum()) < int((relu > 0).sum())  # the thresholds bind
    theirs.save_model(tmp_path / "s")
    ours = load_pretrained(tmp_path / "s", "saelens", k=40)
    codes = ours.encode(X)
    assert _rel(codes.to_dense(40), z) <= 1e-5
    assert _rel(ours.decode(codes), x_hat) <= 1e-5


def test_sparsify_save_to_disk_loads_with_sparsify_numbers(tmp_path):
    from sparsify import SparseCoder, SparseCoderConfig

    theirs = SparseCoder(16, SparseCoderConfig(num_latents=40, k=4))
    _randomise(theirs, 5)
    theirs.save_to_disk(tmp_path / "s")
    ours = load_pretrained(tmp_path / "s", "sparsify")
    with torch.no_grad():
        enc = theirs.encode(X)
        x_hat = theirs.decode(enc.top_acts, enc.top_indices)
    codes = ours.encode(X)
    assert _rel(codes.to_dense(40), _dense(enc.top_acts, enc.top_indices, 40)) <= 1e-5
    assert _rel(ours.decode(codes), x_hat) <= 1e-5
