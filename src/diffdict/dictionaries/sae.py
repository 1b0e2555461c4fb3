"""TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

    z = TopK(relu(W_enc (x - b_dec) + b_enc))        x_hat = W_dec^T z + b_dec

ReLU comes before the top-k, so a token may use fewer than k latents (zero values are
padding in `SparseCodes`). With ``batch_topk`` training (Bussmann et al. 2024) the k*B largest
activations of a batch are kept instead of k per token; inference still keeps k per token.

The module is trained in a standardised space (see `train_sae`); the saved weights are folded
back into model space by `fold_normalisation`, where decoder rows are no longer unit-norm:
``directions`` renormalises them, and a latent's contribution to x_hat is
``value * decoder_norms[i]``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from .base import Dictionary, SparseCodes
from .kernels import SparsePattern, preactivations, row_topk, sparse_decode, topk_encode

InitDistribution = Literal["normal", "uniform"]  # the initial rows' entries, before normalising
INIT_DISTRIBUTIONS = get_args(InitDistribution)


class TopKSAE(Dictionary):
    kind = "topk_sae"

    def __init__(self, d_model: int, n_features: int, k: int, batch_topk: bool = False):
        super().__init__()
        self.d_model, self.n_features, self.k, self.batch_topk = d_model, n_features, k, batch_topk
        self.W_enc = nn.Parameter(torch.zeros(n_features, d_model))
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.W_dec = nn.Parameter(torch.zeros(n_features, d_model))
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        self._workspace: dict = {}  # reused pre-activation buffer (CPU), see kernels.preactivations

    def hparams(self) -> dict:
        return {**super().hparams(), "k": self.k, "batch_topk": self.batch_topk}

    @torch.no_grad()
    def init_weights(
        self,
        b_dec: torch.Tensor,
        generator: torch.Generator | None = None,
        encoder_norm: float = 1.0,
        distribution: InitDistribution = "uniform",
    ) -> None:
        """Random unit-norm decoder rows, encoder = `encoder_norm` x decoder^T, zero encoder bias.
        The rows' entries are drawn from ``distribution`` before normalising: ``uniform`` on [-1, 1]
        (nn.Linear's, sparsify's: no row leans far into a few dimensions) or ``normal`` (directions
        uniform on the sphere)."""
        if distribution not in INIT_DISTRIBUTIONS:
            raise ValueError(f"init distribution '{distribution}' is not one of {list(INIT_DISTRIBUTIONS)}")
        shape = (self.n_features, self.d_model)
        if distribution == "normal":
            w = torch.randn(shape, generator=generator)
        else:
            w = torch.rand(shape, generator=generator) * 2 - 1
        self.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        self.W_enc.copy_(self.W_dec * encoder_norm)
        self.b_enc.zero_()
        self.b_dec.copy_(b_dec)

    def encode_topk(
        self,
        x: torch.Tensor,
        dead: torch.Tensor | None = None,
        k_aux: int = 0,
        patterns: tuple[SparsePattern, SparsePattern] | None = None,
        aux_input_grad: bool = True,
    ):
        """-> (values, index, aux_values, aux_index); differentiable (sparse backward).
        ``patterns``, ``aux_input_grad``: see `topk_encode`; pass the patterns on to `decode_sparse`."""
        k = self.k * (1 + int(self.batch_topk and self.training))  # batch_topk: candidates
        values, index, aux_v, aux_i = topk_encode(
            x - self.b_dec, self.W_enc, self.b_enc, k, dead, k_aux, self._workspace, patterns, aux_input_grad
        )
        if self.batch_topk and self.training:
            # keep the k*B largest of the batch; zeroed entries become padding
            thr = values.flatten().topk(self.k * x.shape[0], sorted=False).values.min()
            values = values * (values >= thr)
        return values, index, aux_v, aux_i

    def decode_sparse(
        self, values: torch.Tensor, index: torch.Tensor, bias: bool = True, pattern: SparsePattern | None = None
    ) -> torch.Tensor:
        out = sparse_decode(index, values, self.W_dec, pattern)
        return out + self.b_dec if bias else out

    def encode(self, x: torch.Tensor) -> SparseCodes:
        with torch.no_grad():
            pre = preactivations(x.to(self.W_enc.dtype) - self.b_dec, self.W_enc, self.b_enc)
            values, index = row_topk(pre, self.k)  # unsorted: nothing downstream needs the order
            values = values.clamp_min(0)  # relu after top-k: same codes, no dense relu
        return SparseCodes(index, values)

    def decode(self, codes: SparseCodes) -> torch.Tensor:
        with torch.no_grad():
            return self.decode_sparse(codes.values.to(self.W_dec.dtype), codes.indices)

    @property
    def decoder_norms(self) -> torch.Tensor:
        return self.W_dec.detach().norm(dim=1)

    @property
    def directions(self) -> torch.Tensor:
        w = self.W_dec.detach()
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.W_dec.dtype).eps)

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """Adam would otherwise spend its step growing the norm that we renormalise away."""
        if self.W_dec.grad is None:
            return
        w, g = self.W_dec, self.W_dec.grad
        parallel = torch.bmm(g[:, None, :], w[:, :, None]).view(-1, 1)  # row-wise dots, no [n, d] temporary
        g.addcmul_(w, parallel, value=-1)

    @torch.no_grad()
    def fold_normalisation(self, mean: torch.Tensor, scale: torch.Tensor) -> TopKSAE:
        """A copy acting on raw x, for a model trained on (x - mean) / scale:
        W_enc' = W_enc / scale, b_dec' = mean + scale * b_dec, W_dec' = W_dec * scale.
        Same codes, and x_hat' = mean + scale * x_hat."""
        out = TopKSAE(self.d_model, self.n_features, self.k, self.batch_topk).to(self.W_dec.device)
        out.W_enc.copy_(self.W_enc / scale)
        out.b_enc.copy_(self.b_enc)
        out.W_dec.copy_(self.W_dec * scale)
        out.b_dec.copy_(mean + scale * self.b_dec)
        return out
