"""TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

    z = TopK(relu(W_enc (x - b_dec) + b_enc))        x_hat = W_dec^T z + b_dec

ReLU comes before the top-k, so a token may use fewer than k latents (zero values are
padding in `SparseCodes`).

BatchTopK (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders"): training keeps the k*B largest
activations of a batch of B tokens, so a token may use more latents than another (up to ``max_k``
each, the candidates a token offers; the kernels carry only the kept ones, as ragged codes); an
exponential moving average of the smallest kept activation becomes ``threshold`` (or, calibrated
after training, the value that keeps k per token on a sample: ``calibrate_threshold``), and inference
keeps, of the latents above it, a token's largest ``max_k`` (SAELens saves the same SAE as a
JumpReLU with that threshold). Only the threshold, not the batch, then decides a token's codes, as
the paper and SAELens do. The threshold is held per latent: training keeps the entries equal, a
JumpReLU SAE read from SAELens (`interop.saelens`) brings its own.

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
BATCH_TOPK_MAX_K = 4  # BatchTopK's default max_k, in units of k
# BatchTopK's threshold: the moving average's rate per step (SAELens' topk_threshold_lr), a time constant of
# ~100 steps: after 256 steps it still lags (bench_sae: 19.8 active for k 32, results/batch_topk_synthetic.md)
THRESHOLD_RATE = 0.01


class TopKSAE(Dictionary):
    kind = "topk_sae"

    def __init__(self, d_model: int, n_features: int, k: int, batch_topk: bool = False, max_k: int | None = None):
        super().__init__()
        self.d_model, self.n_features, self.k, self.batch_topk = d_model, n_features, k, batch_topk
        # BatchTopK: the most latents one token may keep (the width of its codes); TopK: k
        self.max_k = min(n_features, max_k or BATCH_TOPK_MAX_K * k) if batch_topk else k
        if self.max_k < k:
            raise ValueError(f"max_k={max_k} must be >= k={k}: a token keeps up to max_k latents, k on average")
        self.W_enc = nn.Parameter(torch.zeros(n_features, d_model))
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.W_dec = nn.Parameter(torch.zeros(n_features, d_model))
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        if batch_topk:  # a buffer: saved, checkpointed and folded with the weights (only BatchTopK has one)
            self.register_buffer("threshold", torch.zeros(n_features))
        self._workspace: dict = {}  # reused pre-activation buffer (CPU), see kernels.preactivations

    def hparams(self) -> dict:
        hp = {**super().hparams(), "k": self.k, "batch_topk": self.batch_topk}
        return {**hp, "max_k": self.max_k} if self.batch_topk else hp

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
        ``patterns``, ``aux_input_grad``: see `topk_encode`; pass the patterns on to `decode_sparse`.
        BatchTopK in training: values and index are ragged (flat, offsets in ``patterns[0]``)."""
        batch = self.batch_topk and self.training
        return topk_encode(
            x - self.b_dec,
            self.W_enc,
            self.b_enc,
            self.max_k if batch else self.k,
            dead,
            k_aux,
            self._workspace,
            patterns,
            aux_input_grad,
            self.k * x.shape[0] if batch else 0,  # BatchTopK: the batch keeps k per token on average
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "threshold"  # saved before thresholds were per latent (2026-12-06): one for all
        if self.batch_topk and key in state_dict and state_dict[key].dim() == 0:
            state_dict[key] = state_dict[key].expand(self.n_features).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update_threshold(self, values: torch.Tensor, rate: float = THRESHOLD_RATE) -> None:
        """BatchTopK: move ``threshold`` toward the smallest activation a training batch kept."""
        v = values.detach()
        kept = v[v > 0]
        if kept.numel():
            self.threshold.lerp_(kept.min().float(), rate)

    @torch.no_grad()
    def calibrate_threshold(self, x: torch.Tensor, max_elements: int = 2**26) -> float:
        """BatchTopK: set every latent's threshold so that the tokens of ``x`` keep k latents each on
        average at inference, counting a token's latents above it up to its ``max_k`` largest: the
        (k N + 1)-th largest of the N tokens' top-``max_k`` activations (0 if fewer are positive).
        One value for every latent, as training keeps it (per-latent thresholds, as a JumpReLU read from
        SAELens brings, are replaced). Pre-activations are computed ``max_elements`` at a time. Returns it."""
        if not self.batch_topk:
            raise ValueError("calibrate_threshold: only a BatchTopK SAE has a threshold (batch_topk=True)")
        rows = max(1, max_elements // self.n_features)
        tops = []
        for part in x.split(rows):
            pre = preactivations(part.to(self.W_enc.dtype) - self.b_dec, self.W_enc, self.b_enc)
            tops.append(row_topk(pre, self.max_k)[0].float().flatten())
        v = torch.cat(tops)
        keep = self.k * len(x)  # every candidate counts when keep >= v.numel(): no threshold but 0
        theta = float(v.kthvalue(v.numel() - keep).values.clamp_min(0)) if keep < v.numel() else 0.0
        self.threshold.fill_(theta)
        return theta

    def decode_sparse(
        self, values: torch.Tensor, index: torch.Tensor, bias: bool = True, pattern: SparsePattern | None = None
    ) -> torch.Tensor:
        out = sparse_decode(index, values, self.W_dec, pattern)
        return out + self.b_dec if bias else out

    def encode(self, x: torch.Tensor) -> SparseCodes:
        with torch.no_grad():
            pre = preactivations(x.to(self.W_enc.dtype) - self.b_dec, self.W_enc, self.b_enc)
            if self.batch_topk:  # a JumpReLU: latents at or below their threshold are off, then the top max_k
                pre.masked_fill_(pre <= self.threshold, 0)  # in place: `pre` is scratch (no grad here)
            values, index = row_topk(pre, self.max_k)  # unsorted: nothing downstream needs the order
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
        out = TopKSAE(self.d_model, self.n_features, self.k, self.batch_topk, self.max_k).to(self.W_dec.device)
        if self.batch_topk:  # the pre-activations, so the threshold, are the same in both spaces
            out.threshold.copy_(self.threshold)
        out.W_enc.copy_(self.W_enc / scale)
        out.b_enc.copy_(self.b_enc)
        out.W_dec.copy_(self.W_dec * scale)
        out.b_dec.copy_(mean + scale * self.b_dec)
        return out
