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

``stop_cos`` (used while building ITDA) stops a token's pursuit as soon as its reconstruction
reaches that cosine: the build only asks whether *some* code with L0 <= k is good enough, and
most tokens of a mature dictionary answer that in a few iterations.

A token may end with fewer than k non-zero values (no atom correlates positively with the
residual); those slots hold value 0, which `SparseCodes` treats as padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PURSUITS = ("gradient", "matching")


def _recon(index: torch.Tensor, coef: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    return F.embedding_bag(index, atoms, per_sample_weights=coef, mode="sum")


def _select(r: torch.Tensor, atoms: torch.Tensor, index: torch.Tensor, t: int, nonneg: bool):
    """-> (new atom [B], correlations of the residual with support + new atom [B, t+1])."""
    corr = r @ atoms.T  # [B, n]
    g_support = corr.gather(1, index[:, :t])
    score = corr if nonneg else corr.abs()
    if t:
        score.scatter_(1, index[:, :t], float("-inf"))  # each atom at most once
    j = score.argmax(1)
    g_new = corr.gather(1, j[:, None])  # j itself is never masked
    return j, torch.cat([g_support, g_new], 1)


def _gp_step(x, r, index, coef, t, atoms, nonneg):
    """One gradient-pursuit iteration; updates index/coef in place, returns the residual."""
    j, g = _select(r, atoms, index, t, nonneg)  # g: gradient of -||r||^2/2 on the support
    index[:, t] = j
    s = index[:, : t + 1]
    c = coef[:, : t + 1]
    if nonneg:
        g = torch.where((c <= 0) & (g < 0), torch.zeros_like(g), g)  # stay feasible
    direction = _recon(s, g, atoms)  # [B, d]
    dd = (direction * direction).sum(1)
    step = (g * g).sum(1) / dd.clamp_min(1e-30)  # exact line search: <Dg, r> = ||g||^2
    step = torch.where(dd > 0, step, torch.zeros_like(step))
    if nonneg:  # cap where the first positive coefficient would reach 0
        ratio = torch.where(g < 0, c / (-g).clamp_min(1e-30), torch.full_like(c, float("inf")))
        step = torch.minimum(step, ratio.min(1).values)
    coef[:, : t + 1] = (c + step[:, None] * g).clamp_min(0) if nonneg else c + step[:, None] * g
    return x - _recon(s, coef[:, : t + 1], atoms)


def _mp_step(x, r, index, coef, t, atoms, nonneg):
    j, g = _select(r, atoms, index, t, nonneg)
    a = g[:, -1].clamp_min(0) if nonneg else g[:, -1]
    index[:, t], coef[:, t] = j, a
    return r - a[:, None] * atoms[j]


def _run(step_fn, x, atoms, k, nonneg, stop_cos):
    """k iterations over all tokens; with ``stop_cos``, a token leaves the active set (keeping
    its code, later slots are padding) as soon as cos(x, x_hat) >= stop_cos."""
    B = x.shape[0]
    k = min(k, atoms.shape[0])
    index = torch.zeros(B, k, dtype=torch.long, device=x.device)
    coef = x.new_zeros(B, k)
    act = None  # None: all tokens, and (ia, ca) are (index, coef) themselves
    xa, r, ia, ca = x, x.clone(), index, coef
    for t in range(k):
        r = step_fn(xa, r, ia, ca, t, atoms, nonneg)
        if stop_cos is not None and t + 1 < k:
            done = F.cosine_similarity(xa, xa - r, dim=1) >= stop_cos
            if done.any():
                if act is None:  # (ia, ca) are (index, coef): nothing to write back
                    act = torch.arange(B, device=x.device)
                else:
                    index[act], coef[act] = ia, ca
                keep = ~done
                act, xa, r, ia, ca = act[keep], xa[keep], r[keep], ia[keep], ca[keep]
                if len(act) == 0:
                    break
    if act is not None:
        index[act], coef[act] = ia, ca
    return coef, index


@torch.no_grad()
def gradient_pursuit(x: torch.Tensor, atoms: torch.Tensor, k: int, nonneg: bool = True,
                     stop_cos: float | None = None):
    """x [B, d], atoms [n, d] unit rows -> (values [B, k'], index [B, k']), k' = min(k, n)."""
    return _run(_gp_step, x, atoms, k, nonneg, stop_cos)


@torch.no_grad()
def matching_pursuit(x: torch.Tensor, atoms: torch.Tensor, k: int, nonneg: bool = True,
                     stop_cos: float | None = None):
    return _run(_mp_step, x, atoms, k, nonneg, stop_cos)


def pursuit(name: str, x: torch.Tensor, atoms: torch.Tensor, k: int, nonneg: bool = True,
            stop_cos: float | None = None):
    if name == "gradient":
        return gradient_pursuit(x, atoms, k, nonneg, stop_cos)
    if name == "matching":
        return matching_pursuit(x, atoms, k, nonneg, stop_cos)
    raise ValueError(f"pursuit '{name}' is not one of {list(PURSUITS)}")
