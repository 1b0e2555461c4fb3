"""Sparse coding against a fixed dictionary of unit-norm atoms, batched over tokens.

Both pursuits select atoms greedily, k iterations, vectorised over all tokens of a batch (the
only Python loop is over the k iterations). Supports are kept as [tokens, k] index/value
tensors, never as dense [tokens x n_atoms] codes; reconstructions use ``embedding_bag``.

* `gradient_pursuit` (Blumensath & Davies 2008; non-negative as in dictionary_learning's
  ``grad_pursuit``): add argmax_j <d_j, r> to the support, then one gradient step on all
  support coefficients with exact line search. Instead of clamping negative coefficients
  to 0 afterwards (which can *increase* the residual), the step is projected: coefficients
  at 0 may not decrease, and the step length is capped where the first coefficient would
  cross 0. The residual norm is therefore non-increasing and codes stay >= 0.
* `matching_pursuit`: coefficient of the selected atom = its correlation with the residual
  (clamped at 0 when ``nonneg``). Each atom is selected at most once per token.

Two engines compute the same iterations:

* residual space (default): keep r = x - x_hat [B, d]; each iteration costs one [B, d] x [d, n]
  matmul for the correlations r @ atoms^T.
* atom space (``gram`` = atoms @ atoms^T given): keep the correlations themselves, updated as
  corr -= step * (g @ gram[support]) by ``embedding_bag`` over Gram rows: O(B * t * n) per
  iteration instead of O(B * d * n), with no d-sized work inside the loop. It wins when d is
  large against sqrt(n) (Flux: d = 3072) and the Gram matrix fits in memory; see `use_gram`.

``stop_cos`` (used while building ITDA) stops a token's pursuit as soon as its reconstruction
reaches that cosine: the build only asks whether *some* code with L0 <= k is good enough, and
most tokens of a mature dictionary answer that in a few iterations.

A token may end with fewer than k non-zero values (no atom correlates positively with the
residual); those slots hold value 0, which `SparseCodes` treats as padding.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F

Pursuit = Literal["gradient", "matching"]
PURSUITS = get_args(Pursuit)
GRAM_MAX_ELEMENTS = 2**27  # 512 MiB of fp32 Gram matrix at most (n <= 11,585 atoms)


def use_gram(n_atoms: int, d: int) -> bool:
    """Whether the atom-space engine is expected to be faster. Its loop gathers Gram rows of
    length n (cache-unfriendly as n grows) where the residual engine runs a d-deep matmul, so
    it pays when d is large against sqrt(n); k matters little (benchmarks/bench_pursuit.py,
    2 threads: 2x at d=256 with 512 atoms, even with 4096; 3.4-6x at d=1024; 6-14x at d=3072)."""
    return n_atoms * n_atoms <= GRAM_MAX_ELEMENTS and d > 4 * math.sqrt(n_atoms)


def _recon(index: torch.Tensor, coef: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    return F.embedding_bag(index, atoms, per_sample_weights=coef, mode="sum")


def _select(corr: torch.Tensor, index: torch.Tensor, t: int, nonneg: bool):
    """-> (new atom [B], correlations with the support + new atom [B, t+1]). The support is
    masked in place and restored afterwards: no [B, n] copy."""
    support = index[:, :t]
    g_support = corr.gather(1, support)
    if nonneg:
        if t:
            corr.scatter_(1, support, float("-inf"))  # each atom at most once
        j = corr.argmax(1)
        if t:
            corr.scatter_(1, support, g_support)
    else:
        score = corr.abs()
        if t:
            score.scatter_(1, support, float("-inf"))
        j = score.argmax(1)
    return j, torch.cat([g_support, corr.gather(1, j[:, None])], 1)


def _gp_update(g, c, dd, nonneg):
    """Exact line-search step length along g (<D g, r> = ||g||^2), capped for non-negativity."""
    step = (g * g).sum(1) / dd.clamp_min(1e-30)
    step = torch.where(dd > 0, step, torch.zeros_like(step))
    if nonneg:  # cap where the first positive coefficient would reach 0
        ratio = torch.where(g < 0, c / (-g).clamp_min(1e-30), torch.full_like(c, float("inf")))
        step = torch.minimum(step, ratio.min(1).values)
    new = c + step[:, None] * g
    return step, (new.clamp_min(0) if nonneg else new)


def _feasible(g, c, nonneg):
    return torch.where((c <= 0) & (g < 0), torch.zeros_like(g), g) if nonneg else g  # stay feasible


# Residual engine: state x, r [B, d].
def _gp_residual(st, t, atoms, gram, nonneg):
    j, g = _select(st["r"] @ atoms.T, st["index"], t, nonneg)
    st["index"][:, t] = j
    s, c = st["index"][:, : t + 1], st["coef"][:, : t + 1]
    g = _feasible(g, c, nonneg)
    direction = _recon(s, g, atoms)
    _, st["coef"][:, : t + 1] = _gp_update(g, c, (direction * direction).sum(1), nonneg)
    st["r"] = st["x"] - _recon(s, st["coef"][:, : t + 1], atoms)


def _mp_residual(st, t, atoms, gram, nonneg):
    j, g = _select(st["r"] @ atoms.T, st["index"], t, nonneg)
    a = g[:, -1].clamp_min(0) if nonneg else g[:, -1]
    st["index"][:, t], st["coef"][:, t] = j, a
    st["r"] = st["r"] - a[:, None] * atoms[j]


# Atom-space engine: state corr0 = x @ atoms^T, corr = r @ atoms^T [B, n], xx = |x|^2.
def _gp_gram(st, t, atoms, gram, nonneg):
    j, g = _select(st["corr"], st["index"], t, nonneg)
    st["index"][:, t] = j
    s, c = st["index"][:, : t + 1], st["coef"][:, : t + 1]
    g = _feasible(g, c, nonneg)
    h = _recon(s, g, gram)  # (D g) @ atoms^T, [B, n]
    step, st["coef"][:, : t + 1] = _gp_update(g, c, (h.gather(1, s) * g).sum(1), nonneg)
    st["corr"].addcmul_(step[:, None], h, value=-1)


def _mp_gram(st, t, atoms, gram, nonneg):
    j, g = _select(st["corr"], st["index"], t, nonneg)
    a = g[:, -1].clamp_min(0) if nonneg else g[:, -1]
    st["index"][:, t], st["coef"][:, t] = j, a
    st["corr"].addcmul_(a[:, None], gram[j], value=-1)


def _cos(st, t):
    if "r" in st:
        return F.cosine_similarity(st["x"], st["x"] - st["r"], dim=1)
    s, c = st["index"][:, : t + 1], st["coef"][:, : t + 1]
    c0 = st["corr0"].gather(1, s)
    dot = (c * c0).sum(1)  # <x, x_hat>
    hh = (c * (c0 - st["corr"].gather(1, s))).sum(1)  # |x_hat|^2 = sum_i c_i <x_hat, a_i>
    return dot / (st["xx"] * hh.clamp_min(0)).sqrt().clamp_min(1e-12)


STEPS = {
    ("gradient", False): _gp_residual,
    ("matching", False): _mp_residual,
    ("gradient", True): _gp_gram,
    ("matching", True): _mp_gram,
}


def _run(name, x, atoms, k, nonneg, stop_cos, gram):
    """k iterations over all tokens; with ``stop_cos``, a token leaves the active set (keeping
    its code, later slots are padding) as soon as cos(x, x_hat) >= stop_cos."""
    B = x.shape[0]
    k = min(k, atoms.shape[0])
    index = torch.zeros(B, k, dtype=torch.long, device=x.device)
    coef = x.new_zeros(B, k)
    if gram is None:
        st = {"x": x, "r": x.clone()}
    else:
        c0 = x @ atoms.T
        st = {"corr0": c0, "corr": c0.clone(), "xx": (x * x).sum(1)}  # corr is updated in place
    st.update(index=index, coef=coef)
    step = STEPS[name, gram is not None]
    act = None  # None: all tokens, and st's index/coef are `index`/`coef` themselves
    for t in range(k):
        step(st, t, atoms, gram, nonneg)
        if stop_cos is not None and t + 1 < k:
            done = _cos(st, t) >= stop_cos
            if done.any():
                if act is None:
                    act = torch.arange(B, device=x.device)
                else:
                    index[act], coef[act] = st["index"], st["coef"]
                keep = ~done
                act, st = act[keep], {key: v[keep] for key, v in st.items()}
                if len(act) == 0:
                    break
    if act is not None:
        index[act], coef[act] = st["index"], st["coef"]
    return coef, index


def pursuit(
    name: str,
    x: torch.Tensor,
    atoms: torch.Tensor,
    k: int,
    nonneg: bool = True,
    stop_cos: float | None = None,
    gram: torch.Tensor | None = None,
):
    """x [B, d], atoms [n, d] unit rows -> (values [B, k'], index [B, k']), k' = min(k, n).
    ``gram``: atoms @ atoms.T to run in atom space (same codes up to rounding)."""
    if name not in PURSUITS:
        raise ValueError(f"pursuit '{name}' is not one of {list(PURSUITS)}")
    with torch.no_grad():
        return _run(name, x, atoms, k, nonneg, stop_cos, gram)


def gradient_pursuit(x, atoms, k, nonneg=True, stop_cos=None, gram=None):
    return pursuit("gradient", x, atoms, k, nonneg, stop_cos, gram)


def matching_pursuit(x, atoms, k, nonneg=True, stop_cos=None, gram=None):
    return pursuit("matching", x, atoms, k, nonneg, stop_cos, gram)
