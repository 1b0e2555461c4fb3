"""Sparse kernels: forward equals the dense computation, gradients are exact."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffdict.dictionaries.base import SparseCodes
from diffdict.dictionaries.kernels import row_topk, sparse_decode, topk_encode


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 16), tokens=st.integers(1, 20), k=st.integers(1, 8), seed=st.integers(0, 999))
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
    w = torch.randn(20, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(20, generator=g, dtype=torch.float64, requires_grad=True)
    dead = torch.zeros(20, dtype=torch.bool)
    dead[::3] = True
    dead = ~dead if many_dead else dead
    values, index, aux_v, aux_i = topk_encode(x, w, b, 4, dead, 3)
    pre = torch.relu(x @ w.T + b)
    torch.testing.assert_close(values, pre.gather(1, index))
    torch.testing.assert_close(values.sort(1).values, pre.topk(4).values.sort(1).values)
    assert dead[aux_i[aux_v > 0]].all()
    torch.testing.assert_close(aux_v.sort(1).values, (pre * dead).topk(3).values.sort(1).values)
    assert torch.autograd.gradcheck(lambda x, w, b: topk_encode(x, w, b, 4, dead, 3)[0], (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: topk_encode(x, w, b, 4, dead, 3)[2], (x, w, b))


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
