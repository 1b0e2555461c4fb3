"""Baselines: MLP neurons and random directions."""

import torch

from diffdict.dictionaries.baselines import NeuronBasis, RandomDirections
from diffdict.dictionaries.synthetic import planted
from diffdict.metrics.reconstruction import reconstruction_metrics


def test_neurons_topk_values_dense_decode_and_output_directions():
    g = torch.Generator().manual_seed(0)
    w_out = torch.randn(8, 20, generator=g)  # ff.net[2].weight: [d_resid, mlp_hidden]
    nb = NeuronBasis.from_w_out(w_out, k=3)
    h = torch.nn.functional.gelu(torch.randn(5, 20, generator=g))
    codes = nb.encode(h)
    torch.testing.assert_close(codes.values, h.topk(3).values)  # values kept as they are
    dense = nb.decode(codes)
    assert dense.shape == (5, 20) and ((dense != 0).sum(1) <= 3).all()
    torch.testing.assert_close(dense.gather(1, codes.indices), codes.values)
    torch.testing.assert_close(nb.directions, w_out.T / w_out.T.norm(dim=1, keepdim=True))
    full = NeuronBasis.from_w_out(w_out, k=20)
    assert reconstruction_metrics(full, h.split(2))["fvu"] < 1e-12


def test_random_is_a_floor_below_one():
    p = planted(d=32, n_atoms=64, k=3, seed=0)
    x = p.sample(4000, 1)
    rd = RandomDirections(32, 256, 4, seed=0).fit(x[:2000])
    assert torch.equal(RandomDirections(32, 256, 4, seed=0).W, rd.W)  # seeded
    assert not torch.equal(RandomDirections(32, 256, 4, seed=1).W, rd.W)
    m = reconstruction_metrics(rd, x[2000:].split(500))
    assert 0.05 < m["fvu"] < 1.0 and m["l0"] <= 4
    torch.testing.assert_close(rd.directions.norm(dim=1), torch.ones(256))
