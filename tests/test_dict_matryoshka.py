"""Matryoshka TopK SAE: the nested loss (known answers), its settings, and that training puts
the general features first."""

import pytest
import torch

from diffdict.dictionaries import build
from diffdict.dictionaries.kinds import sae_kinds
from diffdict.dictionaries.matryoshka import MatryoshkaConfig
from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.synthetic import planted
from diffdict.dictionaries.train_sae import SAEConfig, sae_loss, train_sae


def tiny_sae(d=8, n=32, k=4, seed=0):
    sae = TopKSAE(d, n, k)
    sae.init_weights(torch.zeros(d), torch.Generator().manual_seed(seed))
    return sae


def prefix_fvu(sae, x, m):
    """FVU of the code restricted to latents < m, decoded densely (the definition)."""
    codes = sae.encode(x)
    dense = torch.zeros(len(x), sae.n_features).scatter(1, codes.indices, codes.values)
    dense[:, m:] = 0
    x_hat = dense @ sae.W_dec + sae.b_dec
    return ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()


def test_loss_is_the_mean_of_the_full_and_prefix_fvus():
    sae, x = tiny_sae(), torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    nothing_dead = torch.zeros(32, dtype=torch.bool)
    plain, fvu, *_ = sae_loss(sae, x, nothing_dead, SAEConfig(n_features=32, k=4))
    nested, fvu_m, *_ = sae_loss(sae, x, nothing_dead, MatryoshkaConfig(n_features=32, k=4, prefixes=[4, 16]))
    assert fvu_m.item() == pytest.approx(fvu.item()) and plain.item() == pytest.approx(fvu.item())
    want = (fvu + prefix_fvu(sae, x, 4) + prefix_fvu(sae, x, 16)) / 3
    assert nested.item() == pytest.approx(want.item(), rel=1e-5)


def test_full_width_prefix_is_the_plain_loss():
    sae, x = tiny_sae(), torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    dead = torch.zeros(32, dtype=torch.bool)
    a = sae_loss(sae, x, dead, SAEConfig(n_features=32, k=4))[0]
    b = sae_loss(sae, x, dead, MatryoshkaConfig(n_features=32, k=4, prefixes=[32]))[0]
    assert a.item() == pytest.approx(b.item())


def test_default_prefixes_halve_from_the_full_width():
    assert MatryoshkaConfig(n_features=128, k=8).prefix_sizes == (16, 32, 64)
    assert SAEConfig(n_features=128, k=8).prefix_sizes == ()


@pytest.mark.parametrize("prefixes", [[], [16, 8], [0, 8], [8, 8], [8, 200]])
def test_bad_prefixes_name_the_rule(prefixes):
    with pytest.raises(ValueError, match="strictly increasing latent counts in 1..n_features=128"):
        MatryoshkaConfig(n_features=128, k=8, prefixes=prefixes)


def test_it_is_a_topk_sae_once_trained():
    assert {"topk_sae", "matryoshka_sae"} <= set(sae_kinds()) and "itda" not in sae_kinds()
    p = planted(d=16, n_atoms=24, k=2, seed=3)
    hp = dict(n_features=32, k=2, batch_size=64, tokens=64 * 10, lr=1e-3, prefixes=[8])
    sae = build("matryoshka_sae", hp, p.factory(1000, batch=100), 16, progress=False)
    assert isinstance(sae, TopKSAE) and sae.encode(p.sample(5, 0)).indices.shape == (5, 2)


def test_the_first_latents_reconstruct_alone():
    """Trained with a prefix of 8, its first 8 latents reconstruct far better than the first 8
    of a plain TopK SAE trained on the same data, whose frequent atoms (Zipf frequencies) sit
    anywhere among its latents."""
    p = planted(d=32, n_atoms=64, k=3, noise=0.02, alpha=1.2, seed=0)
    kw = dict(n_features=64, k=3, batch_size=256, tokens=60_000, lr=1e-2, log_every=50, seed=0)
    x = p.sample(2000, 7)
    fvus = {}
    for name, cfg in (("plain", SAEConfig(**kw)), ("matryoshka", MatryoshkaConfig(**kw, prefixes=[8]))):
        sae = train_sae(p.factory(8192, batch=500), 32, cfg, progress=False)
        with torch.no_grad():
            fvus[name] = (prefix_fvu(sae, x, 8).item(), prefix_fvu(sae, x, 64).item())
    assert fvus["matryoshka"][0] < 0.7 * fvus["plain"][0], fvus
    assert fvus["matryoshka"][1] < 0.2, fvus  # and the whole code still reconstructs


def test_with_batch_topk_the_prefixes_nest_the_batch_s_codes():
    """Matryoshka BatchTopK (Bussmann et al. 2025's): the prefix terms restrict the codes the batch kept
    (k x B of them, unevenly spread over tokens), not a per-token TopK."""
    sae = TopKSAE(8, 32, 4, batch_topk=True, max_k=16)
    sae.init_weights(torch.zeros(8), torch.Generator().manual_seed(0))
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    cfg = MatryoshkaConfig(n_features=32, k=4, prefixes=[4, 16], batch_topk=True)
    loss, fvu, _, values, index = sae_loss(sae.train(), x, torch.zeros(32, dtype=torch.bool), cfg)
    with torch.no_grad():  # the batch's codes by the definition: each token's top 16, then the 4 x 64 largest
        pre = torch.relu((x - sae.b_dec) @ sae.W_enc.T + sae.b_enc)
        top = torch.zeros_like(pre).scatter(1, pre.topk(16).indices, pre.topk(16).values)
        dense = top * (top >= top.flatten().topk(4 * 64).values.min())
    kept = (dense > 0).sum(1)
    assert len(values) == int(kept.sum()) <= 4 * 64 and int(kept.max()) > 4  # a batch budget, not k per token
    torch.testing.assert_close(values.detach().sort().values, dense[dense > 0].sort().values)
    total = ((x - x.mean(0)) ** 2).sum()

    def fvu_of(m):
        d = dense.clone()
        d[:, m:] = 0
        return (((x - d @ sae.W_dec.detach() - sae.b_dec.detach()) ** 2).sum() / total).item()

    assert fvu.item() == pytest.approx(fvu_of(32), rel=1e-5)
    assert loss.item() == pytest.approx((fvu_of(32) + fvu_of(4) + fvu_of(16)) / 3, rel=1e-5)


def test_matryoshka_batch_topk_trains_to_a_threshold():
    p = planted(d=16, n_atoms=24, k=2, seed=3)
    hp = dict(n_features=32, k=2, batch_size=64, tokens=64 * 40, lr=3e-3, prefixes=[8], batch_topk=True)
    sae = build("matryoshka_sae", hp, p.factory(1000, batch=100), 16, progress=False)
    assert sae.batch_topk and sae.max_k == 8 and float(sae.threshold.min()) > 0
    assert sae.encode(p.sample(5, 0)).indices.shape == (5, 8)
