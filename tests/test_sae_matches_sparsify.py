"""diffdict's TopK SAE loss against sparsify's `SparseCoder` on the same weights and batch.

A cross-implementation known answer for the sparse kernels and the loss: the reconstruction
FVU and every gradient (after the parallel-component removal) must agree with the peer's. The
AuxK loss agrees in value (with sparsify's normaliser and k_aux = d/2), but the pinned sparsify's
fused encoder drops the gradient of its pre-activations, so its AuxK trains only the dead
latents' decoder rows, where diffdict's (Gao et al.'s) reaches their encoder rows too; the
benchmarks' reading of why sparsify's AuxK is inert (benchmarks/results/sae_gap_peer_steps.md)
rests on that, so a sparsify that changes it fails here. `auxk_grad: decoder` trains what it does.
"""

import pytest
import torch
from peers import require_peer

from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.train_sae import SAEConfig, sae_loss

sparsify = require_peer("sparsify")

D, N, K, TOKENS = 32, 256, 8, 128


def pair(seed: int = 0):
    """A sparsify SparseCoder with a nonzero encoder bias and b_dec, and a diffdict SAE with its weights."""
    torch.manual_seed(seed)
    x = torch.randn(TOKENS, D) * 3 + torch.randn(D)
    sp = sparsify.SparseCoder(D, sparsify.SparseCoderConfig(num_latents=N, k=K))
    with torch.no_grad():
        sp.encoder.bias.normal_(0, 0.1)
        sp.b_dec.copy_(x.mean(0))
    dd = TopKSAE(D, N, K)
    with torch.no_grad():
        dd.W_enc.copy_(sp.encoder.weight), dd.b_enc.copy_(sp.encoder.bias)
        dd.W_dec.copy_(sp.W_dec), dd.b_dec.copy_(sp.b_dec)
    return x, sp, dd


def grads(sp, dd):
    return {
        "W_enc": (dd.W_enc.grad, sp.encoder.weight.grad),
        "b_enc": (dd.b_enc.grad, sp.encoder.bias.grad),
        "W_dec": (dd.W_dec.grad, sp.W_dec.grad),
        "b_dec": (dd.b_dec.grad, sp.b_dec.grad),
    }


def test_fvu_and_gradients_equal_sparsify():
    x, sp, dd = pair()
    cfg = SAEConfig(n_features=N, k=K, auxk_coef=0.0, normalize="none")
    loss, fvu, *_ = sae_loss(dd, x, torch.zeros(N, dtype=torch.bool), cfg)
    loss.backward()
    dd.remove_gradient_parallel_to_decoder_directions()
    out = sp(x)
    out.fvu.backward()
    sp.remove_gradient_parallel_to_decoder_directions()
    assert fvu.item() == pytest.approx(out.fvu.item(), rel=1e-5)
    for name, (g, h) in grads(sp, dd).items():
        assert h.abs().max() > 0, name
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("reach", ["latents", "all"])  # the default, and OpenAI's (the default until 2026-12-06)
def test_auxk_equals_sparsify_in_value_and_decoder_gradient_but_reaches_the_encoder(reach):
    x, sp, dd = pair(1)
    dead = torch.zeros(N, dtype=torch.bool)
    dead[::2] = True  # half the latents dead: every token has positive dead pre-activations
    cfg = SAEConfig(n_features=N, k=K, normalize="none", k_aux=D // 2, auxk_normalizer="total", auxk_grad=reach)
    _, _, auxk, *_ = sae_loss(dd, x, dead, cfg)
    auxk.backward()
    out = sp(x, dead_mask=dead)
    out.auxk_loss.backward()
    assert auxk.item() == pytest.approx(out.auxk_loss.item(), rel=1e-5)
    g = grads(sp, dd)
    torch.testing.assert_close(*g["W_dec"], rtol=1e-4, atol=1e-7)
    assert g["W_dec"][0][dead].abs().sum() > 0 and g["W_dec"][0][~dead].abs().sum() == 0  # dead rows only
    # diffdict: the dead latents' encoder rows and biases learn from AuxK, and under `all` b_dec too (the
    # encoder's input is x - b_dec)
    assert g["W_enc"][0][dead].abs().sum() > 0 and g["W_enc"][0][~dead].abs().sum() == 0
    assert g["b_enc"][0][dead].abs().sum() > 0 and g["b_enc"][0][~dead].abs().sum() == 0
    assert (g["b_dec"][0] is not None and g["b_dec"][0].abs().sum() > 0) == (reach == "all")
    # sparsify 1.3.3: FusedEncoder.backward ignores its pre-activations' gradient, so no encoder gradient
    for name in ("W_enc", "b_enc", "b_dec"):
        assert g[name][1] is None or g[name][1].abs().sum() == 0, name


def test_auxk_grad_decoder_trains_what_sparsify_trains():
    """``auxk_grad: decoder`` is sparsify 1.3.3's AuxK: the same value and the same gradient on every
    parameter (the dead decoder rows only)."""
    x, sp, dd = pair(2)
    dead = torch.zeros(N, dtype=torch.bool)
    dead[::2] = True
    cfg = SAEConfig(n_features=N, k=K, normalize="none", k_aux=D // 2, auxk_normalizer="total", auxk_grad="decoder")
    _, _, auxk, *_ = sae_loss(dd, x, dead, cfg)
    auxk.backward()
    out = sp(x, dead_mask=dead)
    out.auxk_loss.backward()
    assert auxk.item() == pytest.approx(out.auxk_loss.item(), rel=1e-5)
    for name, (g, h) in grads(sp, dd).items():
        g = torch.zeros_like(getattr(dd, name)) if g is None else g
        h = torch.zeros_like(g) if h is None else h
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-7, msg=name)
    assert dd.W_dec.grad[dead].abs().sum() > 0
