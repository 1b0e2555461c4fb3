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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..settings import setting
from .base import Dictionary, SparseCodes
from .data import BatchesFactory, sample
from .kinds import FitInputs, Kind, register


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
    n_features: int = setting(65536, "random unit directions", minimum=1)
    k: int = setting(64, "largest positive projections kept per token", minimum=1)
    seed: int = setting(0, "direction seed (replicate r uses seed + r)")
    init_tokens: int = setting(16384, "sample for the mean and the least-squares scale", minimum=1)


@dataclass
class NeuronsConfig:
    k: int = setting(64, "largest neuron activations kept per token", minimum=1)


def build_random(
    factory: BatchesFactory, d_model: int, cfg: RandomConfig, site: str = "?", device: str | torch.device = "cpu"
) -> RandomDirections:
    x = sample(factory, cfg.init_tokens, site).x
    return RandomDirections(d_model, cfg.n_features, cfg.k, cfg.seed).fit(x).to(device)


def _fit_random(cfg: RandomConfig, i: FitInputs) -> RandomDirections:
    out = build_random(i.batches, i.d_model, cfg, i.site, i.device)
    out.build_info = {}
    return out


def _fit_neurons(cfg: NeuronsConfig, i: FitInputs) -> NeuronBasis:
    if i.w_out is None:
        raise ValueError(f"site '{i.site}': kind 'neurons' needs w_out (ff.net[2].weight)")
    w_out = torch.as_tensor(i.w_out)
    if w_out.ndim != 2 or w_out.shape[1] != i.d_model:
        raise ValueError(
            f"site '{i.site}': neurons need w_out of shape [d_resid, {i.d_model}] (the MLP width of "
            f"the site), got {tuple(w_out.shape)}; is the site's place 'mlp'?"
        )
    out = NeuronBasis.from_w_out(w_out, cfg.k).to(i.device)
    out.build_info = {}
    return out


RANDOM = register(
    Kind(
        "random",
        RandomConfig,
        _fit_random,
        trained=False,
        order=2,
        doc="random unit directions around the data mean: the floor of every comparison",
    )
)
NEURONS = register(
    Kind(
        "neurons",
        NeuronsConfig,
        _fit_neurons,
        order=3,
        places=("mlp",),
        needs=("w_out",),
        trained=False,
        doc="the MLP's own neurons at an mlp site, steering along their output weights",
    )
)
