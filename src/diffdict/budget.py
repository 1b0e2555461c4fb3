"""The per-token budget a comparison with a null is held at.

Random directions find the planted concepts better with every latent a token keeps (token AUROC
over all concepts 0.722 at k 4, 0.790 at k 8, 0.825 at k 12 on the toy;
benchmarks/results/texture_world/seed_spread_k_curve.md), so a dictionary compared with a null
that keeps fewer latents per token wins on the null's weakness. A budget is measured, not read
from a config: ``l0``, the mean active latents per token of a run's codes on the interp tokens
(a BatchTopK SAE's learnt threshold realises its mean k only to a few per cent: 4.03 / 4.07 for
k 4). A comparison is fair when the dictionary keeps at most ``1 + BUDGET_SLACK`` times the null's
latents; a more generous null only makes it harder. Where a site has several nulls (random
directions at k 4 and at k 8, say), each dictionary is compared with the sparsest fair one
(`matched_null`): the null at its own budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

BUDGET_SLACK = 0.05  # the most a dictionary's latents per token may exceed its null's, relative


def known(l0) -> bool:
    return l0 is not None and math.isfinite(float(l0))


def at_one_budget(l0, null_l0) -> bool:
    """Whether a comparison with a null keeping `null_l0` latents per token is fair to it: the
    dictionary keeps at most ``1 + BUDGET_SLACK`` times as many (unknown budgets: not judged, True)."""
    return not (known(l0) and known(null_l0) and float(l0) > float(null_l0) * (1 + BUDGET_SLACK))


def matched_null(d: str, nulls: Sequence[str], budgets: Mapping[str, float]) -> str | None:
    """The null `d` is compared with: of `nulls` (in order), the one with the fewest latents per token
    that is still fair to it (`at_one_budget`); with none fair, the most generous (the comparison then
    fails, saying why); with any budget unknown, the first, as before budgets were measured."""
    if not nulls:
        return None
    if not (known(budgets.get(d)) and all(known(budgets.get(n)) for n in nulls)):
        return nulls[0]
    fair = [n for n in nulls if at_one_budget(budgets[d], budgets[n])]
    if fair:
        return min(fair, key=lambda n: budgets[n])  # the first of equals: min is stable
    return max(nulls, key=lambda n: budgets[n])
