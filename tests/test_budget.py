"""The budget a comparison with a null is held at: known answers."""

import math

import pytest

from diffdict.budget import BUDGET_SLACK, at_one_budget, matched_null


@pytest.mark.parametrize(
    ("l0", "null_l0", "fair"),
    [
        (8.0, 8.0, True),
        (4.0, 8.0, True),  # a more generous null only makes the comparison harder
        (8.0, 4.0, False),
        (4.0 * (1 + BUDGET_SLACK), 4.0, True),  # a learnt threshold's few per cent over its mean k
        (4.0 * (1 + BUDGET_SLACK) + 1e-6, 4.0, False),
        (math.nan, 4.0, True),  # unknown: not judged
        (None, 4.0, True),
    ],
)
def test_a_comparison_is_fair_when_the_null_keeps_as_many_latents(l0, null_l0, fair):
    assert at_one_budget(l0, null_l0) == fair


def test_each_dictionary_meets_the_sparsest_fair_null():
    budgets = {"sae": 8.0, "batchtopk": 4.03, "wide": 16.0, "random_k4": 4.0, "random": 8.0, "random_k12": 12.0}
    nulls = ["random", "random_k4", "random_k12"]
    assert matched_null("sae", nulls, budgets) == "random"
    assert matched_null("batchtopk", nulls, budgets) == "random_k4"
    assert matched_null("wide", nulls, budgets) == "random_k12"  # none fair: the most generous, to fail visibly
    assert matched_null("sae", [], budgets) is None
    assert matched_null("sae", ["random", "random_k4"], {**budgets, "random_k4": math.nan}) == "random"
    assert matched_null("sae", ["random_k4", "random"], {"random": 8.0, "random_k4": 4.0}) == "random_k4"  # first
    assert matched_null("sae", ["b", "a"], {"sae": 8.0, "a": 8.0, "b": 8.0}) == "b"  # of equals, the first
