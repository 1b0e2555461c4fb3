"""Baselines that every learned dictionary is compared against.

* `neurons`: the MLP's own neurons at a block. Input is the ``mlp`` site activation (post-GELU
  hidden, [N, mlp_hidden]); a code keeps the k largest neuron activations as they are (GELU
  values may be slightly negative; those only appear when fewer than k are positive), decode
  is the dense reconstruction in MLP space (the kept neurons, zeros elsewhere). Its
  ``directions`` are the neurons' output weights in the residual stream, the columns of
  ``ff.net[2].weight`` [d_resid, mlp_hidden], unit-normalised: adding one steers like
  exciting that neuron.
* `random`: ``n_features`` random unit directions (seeded) around the data mean, with a TopK
  code: the k largest projections <x - mean, d_i> (kept if positive), decode
  ``mean + alpha * sum_i v_i d_i`` where the single scalar ``alpha`` is fitted by least squares
  on a sample, so that overlapping directions do not overshoot. A floor for every comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .base import Dictionary, SparseCodes
from .data import BatchesFactory, sample


class NeuronBasis(Dictionary):
    kind = "neurons"

    def __init__(self, d_model: int, n_features: int, k: int, d_resid: int):
        super().__init__()
        if n_features != d_model:
            raise ValueError(f"neurons: n_features ({n_features}) must equal the MLP width d_model ({d_model})")
        self.d_model, self.n_features, self.k, self.d_resid = d_model, n_features, k, d_resid
        self.register_buffer("w_out", torch.zeros(d_resid, d_model))

    @classmethod
    def from_w_out(cls, w_out: torch.Tensor, k: int) -> NeuronBasis:
        """``w_out``: ``ff.net[2].weight`` (single blocks: the MLP part of ``proj_out``),
        shape [d_resid, mlp_hidden]."""
        d_resid, hidden = w_out.shape
        out = cls(hidden, hidden, k, d_resid)
        out.w_out.copy_(w_out.detach().float())
        return out

    def hparams(self) -> dict:
        return {**super().hparams(), "k": self.k, "d_resid": self.d_resid}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> SparseCodes:
        values, index = x.float().topk(min(self.k, self.n_features), dim=-1)
        return SparseCodes(index, values)

    @torch.no_grad()
    def decode(self, codes: SparseCodes) -> torch.Tensor:
        return codes.to_dense(self.n_features)

    @property
    def decoder_norms(self) -> torch.Tensor:
        return torch.ones(self.n_features, device=self.w_out.device)

    @property
    def directions(self) -> torch.Tensor:
        return F.normalize(self.w_out.T, dim=1)


class RandomDirections(Dictionary):
    kind = "random"

    def __init__(self, d_model: int, n_features: int, k: int, seed: int = 0):
        super().__init__()
        self.d_model, self.n_features, self.k, self.seed = d_model, n_features, k, seed
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("W", F.normalize(torch.randn(n_features, d_model, generator=g), dim=1))
        self.register_buffer("mean", torch.zeros(d_model))
        self.register_buffer("alpha", torch.ones(()))

    def hparams(self) -> dict:
        return {**super().hparams(), "k": self.k, "seed": self.seed}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> SparseCodes:
        proj = (x.float() - self.mean) @ self.W.T
        values, index = proj.topk(min(self.k, self.n_features), dim=-1)
        return SparseCodes(index, values.clamp_min(0) * self.alpha)

    @torch.no_grad()
    def decode(self, codes: SparseCodes) -> torch.Tensor:
        return self.mean + F.embedding_bag(codes.indices, self.W, per_sample_weights=codes.values.float(), mode="sum")

    @property
    def decoder_norms(self) -> torch.Tensor:
        return torch.ones(self.n_features, device=self.W.device)

    @property
    def directions(self) -> torch.Tensor:
        return self.W

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> RandomDirections:
        """Set the mean and the least-squares scale alpha from a sample x [N, d]."""
        self.mean.copy_(x.double().mean(0).float())
        self.alpha.fill_(1.0)
        y = self.decode(self.encode(x)) - self.mean
        xc = x.float() - self.mean
        denom = (y * y).sum()
        self.alpha.fill_(float((y * xc).sum() / denom) if denom > 0 else 1.0)
        return self


@dataclass
class RandomConfig:
    n_features: int = 65536
    k: int = 64
    seed: int = 0
    init_tokens: int = 16384


@dataclass
class NeuronsConfig:
    k: int = 64


RANDOM_DEFAULTS = {f.name: f.default for f in fields(RandomConfig)}
NEURONS_DEFAULTS = {f.name: f.default for f in fields(NeuronsConfig)}


def build_random(
    factory: BatchesFactory, d_model: int, cfg: RandomConfig, site: str = "?", device: str | torch.device = "cpu"
) -> RandomDirections:
    x = sample(factory, cfg.init_tokens, site).x
    return RandomDirections(d_model, cfg.n_features, cfg.k, cfg.seed).fit(x).to(device)
