"""Reconstruction metrics: FVU's reference points and streaming invariance."""

import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from diffdict.dictionaries.base import Dictionary, SparseCodes
from diffdict.metrics.reconstruction import reconstruction_metrics


class Fixed(Dictionary):
    """Identity codes (perfect) or a constant prediction (mode='const')."""

    def __init__(self, d, const=None):
        super().__init__()
        self.d_model = self.n_features = d
        self.register_buffer("const", const if const is not None else torch.zeros(d))
        self.mode = "const" if const is not None else "identity"

    def encode(self, x):
        idx = torch.arange(self.d_model).expand(len(x), -1)
        return SparseCodes(idx, x.clone() if self.mode == "identity" else torch.zeros_like(x))

    def decode(self, codes):
        if self.mode == "identity":
            return codes.to_dense(self.n_features)
        return self.const.expand(len(codes), -1)

    @property
    def directions(self):
        return torch.eye(self.d_model)


def data(n=3000, d=16, offset=1e4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return offset + torch.randn(n, d, generator=g) * torch.linspace(0.5, 3, d)


def test_perfect_dictionary_has_fvu_zero():
    x = data()
    m = reconstruction_metrics(Fixed(16), x.split(700))
    assert m["fvu"] == 0.0 and m["mse"] == 0.0
    assert m["n_tokens"] == 3000 and m["l0"] == 16 and m["dead_fraction"] == 0.0 and m["alive_fraction"] == 1.0


def test_mean_predictor_has_fvu_one_despite_large_mean():
    x = data(offset=1e4)
    m = reconstruction_metrics(Fixed(16, const=x.double().mean(0).float()), x.split(333))
    assert abs(m["fvu"] - 1.0) < 1e-3, m
    assert m["dead_fraction"] == 1.0 and m["l0"] == 0.0
    # predicting zeros (uncentred) is far worse than 1: the denominator is centred
    assert reconstruction_metrics(Fixed(16, const=torch.zeros(16)), x.split(333))["fvu"] > 1e6


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=8), seed=st.integers(0, 99))
def test_streaming_equals_one_batch(sizes, seed):
    assume(sum(sizes) >= 2)  # one token has no variance
    x = data(n=sum(sizes), d=5, offset=50.0, seed=seed)
    pred = Fixed(5, const=torch.full((5,), 49.0))
    whole = reconstruction_metrics(pred, [x])
    parts = reconstruction_metrics(pred, x.split(sizes))
    for key in whole:
        assert math.isclose(whole[key], parts[key], rel_tol=1e-9, abs_tol=1e-12), key
    xd = x.double()
    expected = (xd - 49.0).pow(2).sum() / (xd - xd.mean(0)).pow(2).sum()
    assert math.isclose(parts["fvu"], float(expected), rel_tol=1e-6)
