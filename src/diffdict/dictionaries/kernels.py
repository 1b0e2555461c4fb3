"""Sparse autograd kernels for TopK dictionaries.

Only k of the n latents of a token are non-zero, so neither the decoder nor the encoder's
backward needs a dense [tokens x n] product (the approach of EleutherAI sparsify's fused
encoder and sparse decoder, written here independently):

* `topk_encode`: dense pre-activations and top-k in the forward pass (unavoidable), but the
  backward only touches the selected latents: O(tokens * k * d) instead of O(tokens * n * d).
* `sparse_decode`: ``embedding_bag`` with per-sample weights in the forward pass; in the
  backward, the code gradient is a sampled dense-dense product at the k entries per token and
  the weight gradient one sparse x dense product.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

_fwd = torch.amp.custom_fwd(device_type="cuda")
_bwd = torch.amp.custom_bwd(device_type="cuda")


class SparsePattern:
    """The latent indices of one batch as a sparse latents x tokens matrix (CSR): [tokens, m], or
    ragged (BatchTopK's codes): a flat [entries] index whose token t starts at ``offsets[t]``, the
    bags of ``F.embedding_bag``.

    Sorted once, on first use, then shared by every weight gradient that scatters over the
    same indices: the decoder's (coefficients: the codes) and the encoder's (the codes'
    gradients). The caller makes one per batch (see `sae_loss`); without one, each gradient
    sorts on its own."""

    def __init__(self, index: torch.Tensor | None = None, offsets: torch.Tensor | None = None):
        self.index, self.offsets = index, offsets  # set by the forward pass that produces the indices
        self._csr = None

    @property
    def tokens(self) -> int:
        return self.index.shape[0] if self.offsets is None else len(self.offsets)

    def entry_tokens(self) -> torch.Tensor:
        """The token of each entry of the flattened index -> [entries]."""
        if self.offsets is None:
            return torch.arange(self.index.numel(), device=self.index.device) // self.index.shape[1]
        counts = torch.diff(self.offsets, append=self.offsets.new_tensor([self.index.numel()]))
        return torch.repeat_interleave(torch.arange(len(self.offsets), device=self.index.device), counts)

    def scatter_outer(self, coef: torch.Tensor, x: torch.Tensor, n: int, out: torch.Tensor | None = None):
        """``out[i] (+)= sum over (t, j) with index[t, j] == i of coef[t, j] * x[t]`` -> [n, d].

        One sparse [n, tokens] x dense [tokens, d] product, no [tokens*k, d] intermediate. CSR
        from one argsort of the indices (int32 where they fit: a faster sort): 1.7 ms where COO,
        which coalesces internally, took 2.7 ms at 1024 tokens, k 32, 4096 latents, d 256."""
        e, t = self.index.numel(), self.tokens
        if e == 0:
            return x.new_zeros(n, x.shape[1]) if out is None else out
        if self._csr is None:
            rows = self.index.reshape(-1)
            rows = rows.int() if n < 2**31 and e < 2**31 else rows
            order = rows.argsort()
            crow = torch.zeros(n + 1, dtype=rows.dtype, device=x.device)
            crow[1:] = torch.bincount(rows, minlength=n).cumsum(0)
            self._csr = crow, self.entry_tokens()[order].to(rows.dtype), order  # cols: the token of each entry
        crow, cols, order = self._csr
        with warnings.catch_warnings():  # "CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            s = torch.sparse_csr_tensor(crow, cols, coef.reshape(-1)[order].to(x.dtype), (n, t), check_invariants=False)
        return s @ x if out is None else out.addmm_(s, x)


def _gather_dot(pattern: SparsePattern, w: torch.Tensor, g: torch.Tensor, sort: bool | None = None) -> torch.Tensor:
    """``out[t, j] = <w[index[t, j]], g[t]>`` -> the index's shape: a sampled dense-dense product
    (SDDMM) at the sampled entries of each token. On CPU (1024 tokens, 4096 latents, k 32,
    d 256) ``torch.sparse.sampled_addmm`` took 10 ms where gathering [tokens, k, d] rows took
    165 ms and the dense [tokens x n] product 105 ms. ``sort``: give CSR each row's columns in
    order (default: off the CPU, whose kernel accepts any order)."""
    index, e, t = pattern.index, pattern.index.numel(), pattern.tokens
    if pattern.offsets is None:
        crow = torch.arange(0, e + 1, max(index.shape[1], 1), device=index.device)
    else:
        crow = torch.cat([pattern.offsets, pattern.offsets.new_tensor([e])])
    cols, order = index.reshape(-1), None
    if index.device.type != "cpu" if sort is None else sort:
        order = (pattern.entry_tokens() * w.shape[0] + cols).argsort()
        cols = cols[order]
    with warnings.catch_warnings():  # "CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        mask = torch.sparse_csr_tensor(crow, cols, g.new_zeros(e), (t, w.shape[0]), check_invariants=False)
    vals = torch.sparse.sampled_addmm(mask, g, w.to(g.dtype).T).values()
    vals = vals if order is None else torch.empty_like(vals).scatter_(0, order, vals)
    return vals.view(index.shape)


def row_topk(pre: torch.Tensor, k: int, group: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """``pre.topk(k, dim=-1, sorted=False)`` of a [B, n] matrix, in two passes on CPU.

    Column j belongs to group j mod (n / group). The k groups with the largest maxima hold every
    top-k entry (an entry outside them is exceeded by k group maxima from distinct groups), so
    top-k runs over k * group candidates instead of n. The group maxima are a max over `group`
    contiguous row slices, which vectorises; the same values as torch.topk (equal values may
    swap indices, as they may in torch.topk). 1.2x faster than torch.topk at n = 4096, k = 32 on
    2 CPU cores; GPU top-k is already fast, so it is used as is there."""
    b, n = pre.shape
    if pre.device.type != "cpu" or n < 1024 or n % group or n // group < 4 * k:
        return pre.topk(k, dim=-1, sorted=False)
    g = n // group
    pv = pre.view(b, group, g)
    _, gi = pv.amax(1).topk(k, dim=-1, sorted=False)  # [b, k] groups
    cand = pv.gather(2, gi[:, None, :].expand(b, group, k)).reshape(b, group * k)
    values, j = cand.topk(k, dim=-1, sorted=False)
    return values, (j // k) * g + gi.gather(1, j % k)


def preactivations(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, workspace: dict | None = None):
    """``x W^T + b`` -> [N, n]. On CPU as a matmul into a reused buffer plus an in-place bias:
    ``F.linear``'s addmm first broadcasts the bias into a fresh [N, n] output, an extra pass
    over it that made it 25 ms against 17 ms here (N 1024, n 4096, d 256, 2 cores). On GPU
    the bias is fused into the matmul, so ``F.linear`` is kept."""
    if x.device.type != "cpu" or x.dtype != weight.dtype or (torch.is_grad_enabled() and weight.requires_grad):
        return F.linear(x, weight, bias)
    shape = (x.shape[0], weight.shape[0])
    buf = workspace.get("pre") if workspace is not None else None
    if buf is None or buf.shape != shape or buf.dtype != x.dtype:
        buf = torch.empty(shape, dtype=x.dtype)
        if workspace is not None:
            workspace["pre"] = buf
    return torch.mm(x, weight.T, out=buf).add_(bias)


def _bag(index: torch.Tensor, weight: torch.Tensor, coef: torch.Tensor, offsets: torch.Tensor | None = None):
    """``sum_j coef[t, j] * weight[index[t, j]]`` -> [tokens, d]; ragged codes with their ``offsets``."""
    return F.embedding_bag(index, weight, offsets, per_sample_weights=coef.to(weight.dtype), mode="sum")


class SparseDecode(torch.autograd.Function):
    @staticmethod
    @_fwd
    def forward(ctx, index, values, weight, pattern, offsets):
        ctx.save_for_backward(index, values, weight)
        ctx.pattern = pattern if pattern is not None and pattern.index is index else SparsePattern(index, offsets)
        return _bag(index, weight, values, offsets)

    @staticmethod
    @_bwd
    def backward(ctx, grad_out):
        index, values, weight = ctx.saved_tensors
        grad_values = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_values = _gather_dot(ctx.pattern, weight, grad_out).to(values.dtype)
        if ctx.needs_input_grad[2]:
            grad_weight = ctx.pattern.scatter_outer(values, grad_out, weight.shape[0]).to(weight.dtype)
        return None, grad_values, grad_weight, None, None


def sparse_decode(
    index: torch.Tensor, values: torch.Tensor, weight: torch.Tensor, pattern: SparsePattern | None = None
) -> torch.Tensor:
    """``sum_j values[:, j] * weight[index[:, j]]`` -> [tokens, d] (no bias). ``pattern``: the
    `SparsePattern` `topk_encode` filled for this ``index``, to share its sorted structure; required
    for ragged codes (flat ``index``), whose bags it holds."""
    offsets = None if index.dim() == 2 else getattr(pattern, "offsets", None)
    if index.dim() != 2 and offsets is None:
        raise ValueError("flat (ragged) codes need the SparsePattern that holds their offsets")
    if index.numel() == 0:  # e.g. AuxK when no dead latent is positive: embedding_bag refuses empty bags
        return weight.new_zeros(index.shape[0] if offsets is None else len(offsets), weight.shape[1])
    if not (values.requires_grad or weight.requires_grad):
        return _bag(index, weight, values, offsets)
    return SparseDecode.apply(index, values, weight, pattern, offsets)


def _aux_topk(pre: torch.Tensor, mask: torch.Tensor, k_aux: int) -> tuple[torch.Tensor, torch.Tensor]:
    """relu of the top-k_aux pre-activations among the ``mask`` columns, keeping only as many
    columns as the token with the most positive ones needs (the rest are 0-padded).

    Dead latents mostly have negative pre-activations (2-4 % of the top-64 were positive in
    bench_sae), and a zero carries no gradient through the relu, so the AuxK decode and its
    backward shrink from k_aux entries per token to a few. ``pre`` may be overwritten."""
    dead = mask.nonzero().squeeze(1)
    k_aux = min(k_aux, len(dead))
    if k_aux == 0:
        return pre.new_zeros(len(pre), 0), dead.new_zeros(len(pre), 0)
    if 8 * len(dead) <= mask.numel():  # few dead: top-k over their columns only
        values, i = pre.index_select(1, dead).topk(k_aux, dim=-1, sorted=False)
        index = dead[i]
    else:  # many: mask the live ones in place, then the two-pass top-k
        values, index = row_topk(pre.masked_fill_(~mask, 0), k_aux)
    width = int((values > 0).sum(1).max()) if values.numel() else 0
    values, j = values.topk(width, dim=-1)  # positives first
    return values.clamp_min(0), index.gather(1, j)


def batch_select(values: torch.Tensor, index: torch.Tensor, kept: int):
    """BatchTopK: the ``kept`` largest of a batch's [B, m] non-negative candidates -> ragged codes
    (values [E], index [E], offsets [B]): token t's entries, in their order, from ``offsets[t]``.

    Ragged rather than [B, m] with zeros: the m = 4k candidates of a token hold k kept entries on
    average, and every sparse product after this one touches only those. Padding to the fullest
    token would not do: one token often keeps all m (bench_sae's data: 128 of 128, every step)."""
    if kept < values.numel():
        values = values * (values >= values.flatten().topk(kept, sorted=False).values.min())
    on = values > 0
    counts = on.sum(1)
    return values[on], index[on], counts.cumsum(0) - counts


class TopKEncode(torch.autograd.Function):
    """relu(x W^T + b) -> top-k (values, indices), plus optionally the top-k_aux among the
    latents in ``aux_mask`` (AuxK). Gradients flow only through the selected latents; the aux
    codes' reach x (hence b_dec) only with ``aux_input_grad``. ``batch_kept`` > 0: BatchTopK,
    ragged codes of the batch's ``batch_kept`` largest top-k candidates (`batch_select`)."""

    @staticmethod
    @_fwd
    def forward(ctx, x, weight, bias, k, aux_mask, k_aux, workspace, patterns, aux_input_grad, batch_kept):
        pre = preactivations(x, weight, bias, workspace)
        # top-k then relu == relu then top-k (up to which zeros are kept), without a dense relu
        values, index = row_topk(pre, k)
        values = values.clamp_min(0)
        offsets = None
        if batch_kept:
            values, index, offsets = batch_select(values, index, batch_kept)
        if aux_mask is not None and k_aux > 0:
            aux_values, aux_index = _aux_topk(pre, aux_mask, k_aux)
        else:
            aux_values, aux_index = pre.new_zeros(x.shape[0], 0), index.new_zeros(x.shape[0], 0)
        ctx.save_for_backward(x, weight, index, values, aux_index, aux_values)
        ctx.patterns = patterns or (SparsePattern(), SparsePattern())
        ctx.patterns[0].index, ctx.patterns[0].offsets, ctx.patterns[1].index = index, offsets, aux_index
        ctx.aux_input_grad = aux_input_grad
        ctx.mark_non_differentiable(index, aux_index)
        return values, index, aux_values, aux_index

    @staticmethod
    @_bwd
    def backward(ctx, g_values, _gi, g_aux, _ga):
        x, weight, index, values, aux_index, aux_values = ctx.saved_tensors
        main, aux = ctx.patterns
        g = (values.new_zeros(values.shape) if g_values is None else g_values) * (values > 0)  # relu'
        ga = None if g_aux is None or aux_index.shape[1] == 0 else g_aux * (aux_values > 0)
        ragged = main.offsets is not None  # BatchTopK: flat main codes
        join = (lambda a, b: torch.cat([a, b.flatten()])) if ragged else (lambda a, b: torch.cat([a, b], 1))
        index_all, g_all = (index, g) if ga is None else (join(index, aux_index), join(g, ga))
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if not ragged:
                grad_x = _bag(index_all, weight, g_all) if ctx.aux_input_grad else _bag(index, weight, g)
            else:  # a token's aux entries are not next to its kept ones: two bags (empty ones allowed)
                grad_x = _bag(index, weight, g, main.offsets)
                if ctx.aux_input_grad and ga is not None:
                    grad_x = grad_x + _bag(aux_index, weight, ga)
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1]:  # the main pattern is the decoder's: sorted once for both
            grad_w = main.scatter_outer(g, x, weight.shape[0])
            if ga is not None:
                aux.scatter_outer(ga, x, weight.shape[0], out=grad_w)
            grad_w = grad_w.to(weight.dtype)
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(weight.shape[0], dtype=g.dtype, device=g.device)
            grad_b.index_add_(0, index_all.reshape(-1), g_all.reshape(-1))
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


def topk_encode(
    x,
    weight,
    bias,
    k: int,
    aux_mask: torch.Tensor | None = None,
    k_aux: int = 0,
    workspace: dict | None = None,
    patterns: tuple[SparsePattern, SparsePattern] | None = None,
    aux_input_grad: bool = True,
    batch_kept: int = 0,
):
    """-> (values [N, k], index [N, k], aux_values [N, m], aux_index [N, m]); the aux codes are
    the top-k_aux latents of ``aux_mask`` with m <= k_aux columns (see `_aux_topk`).
    ``batch_kept`` > 0 (BatchTopK): values and index are ragged, flat [E] with their offsets in
    ``patterns[0].offsets`` (`batch_select`); ``patterns`` is then required.
    ``aux_input_grad``: whether the aux codes' gradient reaches ``x`` (False: only their own
    encoder rows and biases).
    ``workspace``: a dict kept by the caller, in which the [N, n] pre-activations are reused.
    ``patterns``: two fresh `SparsePattern`s, filled with index and aux_index, to pass to
    `sparse_decode` so that decoder and encoder gradients share one sort per index set."""
    if batch_kept and patterns is None:
        raise ValueError("BatchTopK's ragged codes need `patterns`: their offsets are in patterns[0].offsets")
    return TopKEncode.apply(x, weight, bias, k, aux_mask, k_aux, workspace, patterns, aux_input_grad, batch_kept)
