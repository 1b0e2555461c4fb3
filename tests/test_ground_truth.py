"""The ground-truth checks: known verdicts on planted concept and interpretability tables."""

import numpy as np
import pandas as pd
import pytest

from diffdict.budget import BUDGET_SLACK
from diffdict.interp.scoring import compare_to_baseline
from diffdict.metrics.concept_summary import summarize_concepts
from diffdict.metrics.ground_truth import CORE_MIN, MARGIN_MIN, ground_truth_checks, markdown

CORE = ["color=red", "color=blue", "shape=circle", "shape=square", "background=light", "background=dark"]
OTHER = ["size=small", "position=left", "texture=striped"]


def concept_rows(site, d, kind, per_run, probe=0.97, other=None):
    """One row per run and concept: core concepts score `per_run[r]`, the others `other`
    (default: the same), with a little concept-to-concept spread."""
    rows = []
    for r, v in enumerate(per_run):
        for i, c in enumerate(CORE + OTHER):
            base = v if c in CORE or other is None else other
            rows.append(
                dict(site=site, dict=d, kind=kind, replicate=r, concept=c, token_auroc=base + 0.01 * (i % 3 - 1),
                     probe_token_auroc=probe)
            )  # fmt: skip
    return rows


def checks(sae_runs, random_runs, sae_other=None, interp=None, budgets=None):
    """The checks of one SAE against random directions; `budgets`: their latents per token (`l0`)."""
    table = pd.DataFrame(
        concept_rows("double1_img", "sae", "topk_sae", sae_runs, other=sae_other)
        + concept_rows("double1_img", "random", "random", random_runs)
        + concept_rows("double1_mlp", "neurons", "neurons", [0.99])
    )
    if budgets is not None:
        table["l0"] = table["dict"].map({"sae": budgets[0], "random": budgets[1], "neurons": 8.0})
    return ground_truth_checks(table, summarize_concepts(table, n_boot=500), interp).set_index("check")


def test_a_dictionary_that_isolates_the_concepts_passes_every_check():
    c = checks([0.95, 0.96, 0.95], [0.60, 0.62, 0.61])
    assert list(c.index) == ["core_token_auroc", "margin_vs_random"]
    assert c["passed"].all(), c
    assert c.loc["core_token_auroc", "value"] == pytest.approx(0.95, abs=0.01)
    assert c.loc["core_token_auroc", "null"] == pytest.approx(0.61, abs=0.01)
    assert c.loc["core_token_auroc", "ceiling"] == pytest.approx(0.97)
    assert c.loc["margin_vs_random", "lo"] > 0
    assert set(c["site"]) == {"double1_img"}, "a site without random directions is not checked"


def test_one_weak_run_fails_the_core_check():
    c = checks([0.95, 0.96, 0.85], [0.60, 0.60, 0.60])
    assert not c.loc["core_token_auroc", "passed"]
    assert c.loc["core_token_auroc", "value"] == pytest.approx(0.85, abs=0.01)
    assert c.loc["core_token_auroc", "value"] < CORE_MIN
    assert c.loc["margin_vs_random", "passed"]


def test_a_margin_below_the_threshold_fails_even_when_separated():
    c = checks([0.95, 0.95, 0.95], [0.86, 0.86, 0.86])
    margin = c.loc["margin_vs_random"]
    assert margin["lo"] > 0 and margin["value"] < MARGIN_MIN and not margin["passed"]


def test_the_margin_counts_every_concept_not_only_the_core():
    c = checks([0.95, 0.95, 0.95], [0.70, 0.70, 0.70], sae_other=0.50)
    assert c.loc["core_token_auroc", "passed"]
    assert c.loc["margin_vs_random", "value"] == pytest.approx((6 * 0.25 - 3 * 0.20) / 9, abs=0.01)
    assert not c.loc["margin_vs_random", "passed"]


def interp_summary(sae_mean, random_mean, n=64, seed=0):
    """Per-feature balanced accuracies, three runs each, summarised as the workflow does."""
    rng = np.random.default_rng(seed)
    rows = [
        dict(site="double1_img", dict=d, kind=k, replicate=r, balanced_accuracy=m + 0.05 * rng.standard_normal())
        for d, k, m in (("sae", "topk_sae", sae_mean), ("random", "random", random_mean))
        for r in range(3)
        for _ in range(n)
    ]
    return compare_to_baseline(pd.DataFrame(rows), n_boot=500)


@pytest.mark.parametrize(("sae", "random", "passed"), [(0.85, 0.75, True), (0.76, 0.76, False), (0.70, 0.80, False)])
def test_interpretability_passes_only_when_separated_above_random(sae, random, passed):
    c = checks([0.95] * 3, [0.6] * 3, interp=interp_summary(sae, random))
    row = c.loc["interp_balanced_accuracy_vs_random"]
    assert row["passed"] == passed
    assert row["null"] == pytest.approx(random, abs=0.02)


def test_interpretability_says_how_many_latents_were_not_judged():
    interp = interp_summary(0.85, 0.75)
    c = checks([0.95] * 3, [0.6] * 3, interp=interp)
    assert "not judged" not in c.loc["interp_balanced_accuracy_vs_random", "detail"]  # no counts: nothing claimed
    counts = {"sae": (384, 90, 9), "random": (384, 6, 0)}
    for col, i in (("latents", 0), ("left_out_dense", 1), ("left_out_rare", 2)):
        interp[col] = interp["dict"].map({d: c[i] for d, c in counts.items()})
    detail = checks([0.95] * 3, [0.6] * 3, interp=interp).loc["interp_balanced_accuracy_vs_random", "detail"]
    assert detail.endswith("not judged 99 of 384 latents, random 6 of 384")


def test_a_comparison_passes_only_at_one_budget():
    """Random directions find concepts better with every latent a token keeps: a dictionary that keeps
    more than its null fails every comparison with it (and says why), not the core check."""
    interp = interp_summary(0.85, 0.75)
    fair = checks([0.95] * 3, [0.6] * 3, interp=interp, budgets=(8.0, 8.0))
    assert fair["passed"].all() and (fair["l0"] == 8.0).all() and (fair["null_l0"] == 8.0).all()
    unfair = checks([0.95] * 3, [0.6] * 3, interp=interp, budgets=(8.0, 4.0))
    assert unfair.loc["core_token_auroc", "passed"]
    for check in ("margin_vs_random", "interp_balanced_accuracy_vs_random"):
        assert not unfair.loc[check, "passed"]
        assert unfair.loc[check, "value"] == pytest.approx(fair.loc[check, "value"])  # the number stands
        assert "not at one budget: sae keeps 8.00 latents per token, random 4.00" in unfair.loc[check, "detail"]
    assert "not at one budget" not in unfair.loc["core_token_auroc", "detail"]
    # a learnt threshold's few per cent over its mean k, and a more generous null, are fair
    assert checks([0.95] * 3, [0.6] * 3, budgets=(4.0 * (1 + BUDGET_SLACK) - 1e-6, 4.0))["passed"].all()
    assert checks([0.95] * 3, [0.6] * 3, budgets=(4.0, 8.0))["passed"].all()
    assert not checks([0.95] * 3, [0.6] * 3, budgets=(4.0 * (1 + BUDGET_SLACK) + 1e-3, 4.0)).loc[
        "margin_vs_random", "passed"
    ]
    # a table without budgets (before they were recorded) is judged as before, with empty budget columns
    old = checks([0.95] * 3, [0.6] * 3)
    assert old["passed"].all() and old["l0"].isna().all()
    assert "8.0 / 4.0" in markdown(unfair.reset_index()) and "latents per token" in markdown(old.reset_index())


def test_each_sae_is_checked_against_random_directions_at_its_own_budget():
    """Two nulls at one site (k 4 and k 8): the k-8 SAE meets the k-8 null, the BatchTopK SAE at mean k
    4 the k-4 null, in concept recovery and interpretability alike."""
    table = pd.DataFrame(
        concept_rows("double1_img", "sae", "topk_sae", [0.95] * 3)
        + concept_rows("double1_img", "batchtopk", "topk_sae", [0.90] * 3)
        + concept_rows("double1_img", "random", "random", [0.80] * 3)
        + concept_rows("double1_img", "random_k4", "random", [0.70] * 3)
    )
    budgets = {"sae": 8.0, "batchtopk": 4.03, "random": 8.0, "random_k4": 4.0}
    table["l0"] = table["dict"].map(budgets)
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        [dict(site="double1_img", dict=d, kind=k, replicate=r, balanced_accuracy=m + 0.05 * rng.standard_normal())
         for d, k, m in (("sae", "topk_sae", 0.85), ("batchtopk", "topk_sae", 0.80), ("random", "random", 0.84),
                         ("random_k4", "random", 0.70))
         for r in range(3) for _ in range(64)]
    )  # fmt: skip
    runs = pd.DataFrame(
        [dict(site="double1_img", dict=d, replicate=r, l0=v) for d, v in budgets.items() for r in range(3)]
    )
    interp = compare_to_baseline(scores, n_boot=300, run_summaries=runs)
    assert interp.set_index("dict").loc["batchtopk", "baseline"] == "random_k4"
    c = ground_truth_checks(table, summarize_concepts(table, n_boot=300), interp).set_index(["dict", "check"])
    sae, btk = c.loc["sae"], c.loc["batchtopk"]
    assert sae.loc["margin_vs_random", "null"] == pytest.approx(0.80, abs=0.01)
    assert sae.loc["margin_vs_random", "value"] == pytest.approx(0.15, abs=0.01)
    assert sae.loc["margin_vs_random", "null_l0"] == 8.0 and "random 0.800" in sae.loc["margin_vs_random", "detail"]
    assert not sae.loc["interp_balanced_accuracy_vs_random", "passed"]  # 0.85 against 0.84 at its own budget
    assert btk.loc["margin_vs_random", "null"] == pytest.approx(0.70, abs=0.01)
    assert btk.loc["margin_vs_random", "null_l0"] == 4.0 and btk.loc["margin_vs_random", "passed"]
    assert "random_k4 0.700" in btk.loc["margin_vs_random", "detail"]
    assert btk.loc["interp_balanced_accuracy_vs_random", "passed"]  # 0.80 against 0.70
    assert btk.loc["interp_balanced_accuracy_vs_random", "null_l0"] == 4.0
    assert btk.loc["core_token_auroc", "null"] == pytest.approx(0.70, abs=0.01)
    # without recorded budgets every comparison falls back to the first null, as before
    plain = ground_truth_checks(table.drop(columns="l0"), summarize_concepts(table.drop(columns="l0"), n_boot=300))
    assert (plain["null"].dropna().round(2) == 0.80).all()


def test_markdown_shows_every_check_with_its_null():
    c = checks([0.95, 0.96, 0.85], [0.60, 0.60, 0.60], interp=interp_summary(0.85, 0.75)).reset_index()
    md = markdown(c, "toy")
    assert md.startswith("### toy")
    assert md.count("| double1_img | sae |") == 3
    assert "**no**" in md and "2 of 3 checks pass." in md
    assert "every run ≥ 0.90" in md and "≥ +0.15, CI above 0" in md


def test_a_run_without_random_directions_says_why_it_has_no_checks():
    table = pd.DataFrame(concept_rows("double1_img", "sae", "topk_sae", [0.95]))
    c = ground_truth_checks(table, summarize_concepts(table, n_boot=100))
    assert c.empty and list(c.columns)[:3] == ["site", "dict", "check"]
    assert "No checks" in markdown(c) and "random" in markdown(c)


def test_a_value_rounding_onto_its_threshold_shows_another_digit():
    from diffdict.metrics.ground_truth import value_text

    row = dict(check="margin_vs_random", value=0.1498, lo=0.129, hi=0.170, threshold=MARGIN_MIN)
    assert value_text(row) == "+0.1498 [+0.129, +0.170]"
    assert value_text({**row, "value": 0.2}) == "+0.200 [+0.129, +0.170]"
    assert (
        value_text(dict(check="core_token_auroc", value=0.89996, lo=np.nan, hi=np.nan, threshold=CORE_MIN)) == "0.89996"
    )


def test_a_run_that_judged_no_feature_fails_its_interpretability_check_and_says_why(tmp_path):
    """The interp stage ran but no feature was eligible: its summary keeps its header through CSV (the
    workflow reads it back), and the checks show one failing interpretability row with the reason
    instead of dropping the check; the figure says the same in words."""
    from diffdict.plots import plot_interp_scores

    empty = compare_to_baseline(pd.DataFrame(columns=["site", "dict", "kind", "feature", "balanced_accuracy"]))
    assert empty.empty and {"site", "dict", "metric", "mean", "diff_vs_random", "diff_lo"} <= set(empty.columns)
    empty.to_csv(tmp_path / "interp_summary.csv", index=False)
    c = checks([0.95, 0.96, 0.97], [0.60] * 3, interp=pd.read_csv(tmp_path / "interp_summary.csv"))
    row = c.loc["interp_vs_random"]
    assert not row["passed"] and np.isnan(row["value"]) and "none was eligible" in row["detail"]
    assert "2 of 3 checks pass." in markdown(c.reset_index())  # core and margin pass; interpretability cannot
    assert "interp_vs_random" not in checks([0.95] * 3, [0.60] * 3).index  # no interp stage given: no check
    png, _ = plot_interp_scores(empty, tmp_path / "interp_scores.png")
    assert png.exists()
