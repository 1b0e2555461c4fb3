"""Sparse kernels: forward equals the dense computation, gradients are exact."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffdict.dictionaries.base import SparseCodes
from diffdict.dictionaries.kernels import (
    SparsePattern,
    _aux_topk,
    _gather_dot,
    batch_select,
    row_topk,
    sparse_decode,
    topk_encode,
)
from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.train_sae import SAEConfig, sae_loss


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40), d=st.integers(1, 16), tokens=st.integers(1, 20), k=st.integers(1, 8), seed=st.integers(0, 999)
)
def test_sparse_decode_equals_dense(n, d, tokens, k, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    index = torch.randint(0, n, (tokens, k), generator=g)
    values = torch.randn(tokens, k, generator=g, dtype=torch.float64)
    dense = SparseCodes(index, values).to_dense(n) @ w
    torch.testing.assert_close(sparse_decode(index, values, w), dense)
    torch.testing.assert_close(sparse_decode(index, values.requires_grad_(), w.requires_grad_()), dense)


def test_sparse_decode_gradients_match_dense():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(30, 7, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 30, (9, 4), generator=g)
    values = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, w: sparse_decode(index, v, w), (values, w))


@pytest.mark.parametrize("many_dead", [False, True])  # two AuxK paths: column gather / masked fill
def test_topk_encode_matches_dense_and_gradcheck(many_dead):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(64, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(64, generator=g, dtype=torch.float64, requires_grad=True)
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::11] = True  # 6 of 64
    dead = ~dead if many_dead else dead
    values, index, aux_v, aux_i = topk_encode(x, w, b, 4, dead, 3)
    pre = torch.relu(x @ w.T + b)
    torch.testing.assert_close(values, pre.gather(1, index))
    torch.testing.assert_close(values.sort(1).values, pre.topk(4).values.sort(1).values)
    assert dead[aux_i[aux_v > 0]].all()
    ref = (pre * dead).topk(3).values
    assert aux_v.shape[1] == int((ref > 0).sum(1).max())  # zero columns beyond the widest token dropped
    padded = torch.cat([aux_v, aux_v.new_zeros(len(aux_v), 3 - aux_v.shape[1])], 1)
    torch.testing.assert_close(padded.sort(1).values, ref.sort(1).values)
    assert torch.autograd.gradcheck(lambda x, w, b: topk_encode(x, w, b, 4, dead, 3)[0], (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: topk_encode(x, w, b, 4, dead, 3)[2], (x, w, b))


def test_shared_patterns_give_the_gradients_of_the_whole_loss():
    """Encoder and decoder weight gradients share one sorted structure per index set (as in
    `sae_loss`): the composed encode -> decode (+ AuxK decode) still has exact gradients."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    w_enc, w_dec = (torch.randn(48, 6, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    b = torch.randn(48, generator=g, dtype=torch.float64, requires_grad=True)
    dead = torch.arange(48) % 5 == 0

    def loss(w_enc, w_dec, b):
        patterns = SparsePattern(), SparsePattern()
        v, i, av, ai = topk_encode(x, w_enc, b, 4, dead, 3, patterns=patterns)
        out = sparse_decode(i, v, w_dec, patterns[0]).pow(2).sum()
        return out + sparse_decode(ai, av, w_dec, patterns[1]).sin().sum()

    assert torch.autograd.gradcheck(loss, (w_enc, w_dec, b))


def _batch_topk_dense(x, w_enc, b, m, kept):
    """BatchTopK by the definition, densely: each token's top-m of relu(x W^T + b), then the batch's `kept` largest."""
    pre = torch.relu(x @ w_enc.T + b)
    top = torch.zeros_like(pre).scatter(1, pre.topk(m).indices, pre.gather(1, pre.topk(m).indices))
    return top * (top >= top.flatten().topk(min(kept, top.numel())).values.min())


def test_batch_select_keeps_the_batch_s_largest_as_ragged_bags():
    values = torch.tensor([[5.0, 0.0, 3.0, 1.0], [0.5, 0.2, 0.0, 0.0], [4.0, 2.0, 6.0, 0.1]])
    index = torch.arange(12).view(3, 4)
    v, i, offsets = batch_select(values, index, 5)  # the five largest: 6, 5, 4, 3, 2
    assert offsets.tolist() == [0, 2, 2]  # token 0: two entries, token 1: none, token 2: three
    assert v.tolist() == [5.0, 3.0, 4.0, 2.0, 6.0] and i.tolist() == [0, 2, 8, 9, 10]  # each token's in order
    v, i, offsets = batch_select(values, index, 99)  # more than there are: every positive one
    assert offsets.tolist() == [0, 3, 5] and len(v) == 9


@pytest.mark.parametrize("aux_input_grad", [True, False])
def test_batch_topk_ragged_codes_equal_dense_and_gradcheck(aux_input_grad):
    """Ragged BatchTopK codes decode to the dense definition's reconstruction, and the whole loss (encode, decode,
    AuxK decode) has exact gradients, with some tokens keeping none and some all of their m candidates."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 6, generator=g, dtype=torch.float64) * torch.linspace(0.1, 3, 10, dtype=torch.float64)[:, None]
    w_enc, w_dec = (torch.randn(48, 6, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    b = torch.randn(48, generator=g, dtype=torch.float64, requires_grad=True)
    dead = torch.arange(48) % 5 == 0
    patterns = SparsePattern(), SparsePattern()
    v, i, _, _ = topk_encode(x, w_enc, b, 8, dead, 3, patterns=patterns, batch_kept=30)
    counts = torch.diff(patterns[0].offsets, append=torch.tensor([len(i)]))
    assert len(v) == 30 and counts.min() < 3 and counts.max() == 8  # ragged: quiet tokens few, busy ones all m
    dense = _batch_topk_dense(x, w_enc, b, 8, 30)
    torch.testing.assert_close(sparse_decode(i, v, w_dec, patterns[0]), dense @ w_dec)

    def loss(w_enc, w_dec, b):
        patterns = SparsePattern(), SparsePattern()
        v, i, av, ai = topk_encode(
            x, w_enc, b, 8, dead, 3, patterns=patterns, aux_input_grad=aux_input_grad, batch_kept=30
        )
        out = sparse_decode(i, v, w_dec, patterns[0]).pow(2).sum()
        return out + sparse_decode(ai, av, w_dec, patterns[1]).sin().sum()

    assert torch.autograd.gradcheck(loss, (w_enc, w_dec, b))
    with pytest.raises(ValueError, match="need the SparsePattern"):
        sparse_decode(i, v, w_dec)


@settings(max_examples=30, deadline=None)
@given(
    tokens=st.integers(1, 12),
    n=st.integers(4, 40),
    m=st.integers(1, 6),
    kept_share=st.floats(0.05, 1.5),
    seed=st.integers(0, 999),
)
def test_batch_topk_loss_and_gradients_equal_the_dense_definition(tokens, n, m, kept_share, seed):
    """Any batch: ragged codes (tokens keeping none, some or all of their m candidates; budgets beyond the candidates)
    give the dense definition's reconstruction and the same gradients for encoder, bias and decoder."""
    m = min(m, n)
    kept = max(1, round(kept_share * tokens * m))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, 5, generator=g, dtype=torch.float64) * torch.rand(
        tokens, 1, generator=g, dtype=torch.float64
    )
    params = [
        torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True) for shape in ((n, 5), (n,), (n, 5))
    ]

    def sparse(w_enc, b, w_dec):
        patterns = SparsePattern(), SparsePattern()
        v, i, _, _ = topk_encode(x, w_enc, b, m, patterns=patterns, batch_kept=kept)
        return sparse_decode(i, v, w_dec, patterns[0])

    out_s, out_d = sparse(*params), _batch_topk_dense(x, params[0], params[1], m, kept) @ params[2]
    torch.testing.assert_close(out_s, out_d)
    probe = torch.randn(out_d.shape, generator=g, dtype=torch.float64)
    grads = [
        torch.autograd.grad((out * probe).sum(), params, allow_unused=True) if out.requires_grad else [None] * 3
        for out in (out_s, out_d)
    ]  # nothing kept (every pre-activation negative): no graph, gradients zero
    for p, a, b in zip(params, *grads):
        torch.testing.assert_close(torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if b is None else b)


@pytest.mark.parametrize("ragged", [False, True])
def test_gather_dot_with_sorted_columns_is_the_same(ragged):
    """The path other devices take (each CSR row's columns sorted, then put back), run on CPU."""
    g = torch.Generator().manual_seed(4)
    w, grad = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    index = torch.randint(0, 40, (6, 7), generator=g)
    pattern = SparsePattern(index)
    if ragged:  # tokens keep 3, 0, 7, 1, 2, 4 entries
        counts = torch.tensor([3, 0, 7, 1, 2, 4])
        index = torch.cat([index[t, :c] for t, c in enumerate(counts)])
        pattern = SparsePattern(index, counts.cumsum(0) - counts)
    expected = (w[index] * grad[pattern.entry_tokens()].view(*index.shape, 5)).sum(-1)
    torch.testing.assert_close(_gather_dot(pattern, w, grad, sort=True), expected)
    torch.testing.assert_close(_gather_dot(pattern, w, grad, sort=False), expected)


@pytest.mark.parametrize("n_dead", [0, 100, 3000])
def test_aux_topk_at_scale_keeps_every_positive_dead_latent(n_dead):
    g = torch.Generator().manual_seed(n_dead)
    pre = torch.randn(32, 4096, generator=g) - 1.5  # mostly negative, as for dead latents
    mask = torch.zeros(4096, dtype=torch.bool)
    mask[torch.randperm(4096, generator=g)[:n_dead]] = True
    values, index = _aux_topk(pre.clone(), mask, 64)
    ref = (pre.clamp_min(0) * mask).topk(64).values
    assert values.shape[1] == int((ref > 0).sum(1).max())
    assert torch.equal(values.sort(1).values, ref[:, : values.shape[1]].sort(1).values)
    assert mask[index[values > 0]].all() and torch.equal(pre.gather(1, index)[values > 0], values[values > 0])


def test_auxk_with_no_positive_dead_latent_is_a_constant():
    sae = TopKSAE(8, 2048, 4)
    sae.init_weights(torch.zeros(8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc[:100] = -100.0  # dead and far below zero: no aux code survives the relu
    dead = torch.zeros(2048, dtype=torch.bool)
    dead[:100] = True
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    _, _, aux_v, aux_i = sae.encode_topk(x, dead, 4)
    assert aux_v.shape == aux_i.shape == (16, 0)
    loss, fvu, auxk, *_ = sae_loss(sae, x, dead, SAEConfig(n_features=2048, k=4))
    assert auxk > 0 and not auxk.requires_grad  # the error to explain, which no dead latent can reduce
    loss.backward()
    assert sae.W_enc.grad[:100].abs().sum() == 0 and sae.W_enc.grad.abs().sum() > 0


@pytest.mark.parametrize("b,n,k", [(64, 4096, 32), (33, 1024, 8), (16, 2048, 64), (8, 1000, 8), (4, 512, 16)])
def test_row_topk_equals_topk(b, n, k):
    g = torch.Generator().manual_seed(n + k)
    pre = torch.randn(b, n, generator=g)
    pre[:, ::7] = pre[:, :1]  # ties across groups
    pre[0, :] = 0.0  # a row of ties only
    pre[1, : 2 * k] = 100.0 + torch.arange(2 * k)  # all winners in the first columns
    values, index = row_topk(pre, k)
    ref = pre.topk(k, dim=-1).values
    assert torch.equal(values.sort(-1).values, ref.sort(-1).values)
    assert torch.equal(pre.gather(1, index), values)  # indices point at the values
    assert (index.sort(-1).values.diff(dim=-1) > 0).all()  # k distinct columns per row
