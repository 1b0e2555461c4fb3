"""Detection metrics per feature and per method.

Per feature, from the judge's scores on held-out positives (label 1) and negatives (label 0):

- ``balanced_accuracy``: mean of TPR and TNR with the decision ``score >= 0.5``;
- ``auroc``: probability that a positive outscores a negative (ties count 1/2);
- ``detection_score``: the paper's soft score, mean(mean(pos scores), 1 - mean(neg scores)).

Failed judgements are counted in ``failures``; with ``failure_policy: exclude`` (default)
they are left out of the metrics, with ``wrong`` they count as a wrong answer (score 0 for
a positive, 1 for a negative). Per method: means over features with a seeded bootstrap CI.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import pandas as pd

from ..bootstrap import hierarchical_ci
from ..budget import matched_null

FailurePolicy = Literal["exclude", "wrong"]
FAILURE_POLICIES = get_args(FailurePolicy)


def apply_failures(labels: np.ndarray, scores: np.ndarray, ok: np.ndarray, policy: str):
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"interp.failure_policy '{policy}' is not one of {list(FAILURE_POLICIES)}")
    if policy == "exclude":
        return labels[ok], scores[ok]
    return labels, np.where(ok, scores, 1.0 - labels)


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    labels = np.asarray(labels, bool)
    pred = np.asarray(scores, float) >= threshold
    if labels.all() or not labels.any():
        return float("nan")
    return float(0.5 * (pred[labels].mean() + (~pred[~labels]).mean()))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUROC with average ranks for ties; NaN without both classes."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    ranks = np.empty(len(s))
    # average rank within runs of equal scores
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_score(labels: np.ndarray, scores: np.ndarray) -> float:
    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    if labels.all() or not labels.any():
        return float("nan")
    return float(0.5 * (scores[labels].mean() + 1 - scores[~labels].mean()))


def bootstrap_ci(values, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean over the finite `values` (one run of
    `hierarchical_ci`, whose unit level this is)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    return hierarchical_ci([v], n_boot=n_boot, ci=ci, seed=seed)


def feature_scores(judgements: pd.DataFrame, explanations: pd.DataFrame, policy: str = "exclude") -> pd.DataFrame:
    """Per-feature rows from the judgement table (feature, label, score, ok, tokens, cost, ...)."""
    rows = []
    for f, g in judgements.groupby("feature", sort=True):
        lab, sc, ok = g["label"].to_numpy(int), g["score"].to_numpy(float), g["ok"].to_numpy(bool)
        lab_u, sc_u = apply_failures(lab, np.nan_to_num(sc), ok, policy)
        rows.append(
            {
                "feature": int(f),
                "n_pos": int((lab == 1).sum()),
                "n_neg": int((lab == 0).sum()),
                "balanced_accuracy": balanced_accuracy(lab_u, sc_u),
                "auroc": auroc(lab_u, sc_u),
                "detection_score": detection_score(lab_u, sc_u),
                "failures": int((~ok).sum()),
                "judge_tokens": int(g["tokens"].sum()),
                "judge_cost": float(g["cost"].sum()),
            }
        )
    scores = pd.DataFrame(
        rows,
        columns=[
            "feature",
            "n_pos",
            "n_neg",
            "balanced_accuracy",
            "auroc",
            "detection_score",
            "failures",
            "judge_tokens",
            "judge_cost",
        ],
    )
    ex = explanations.rename(
        columns={
            "ok": "explanation_ok",
            "error": "explanation_error",
            "tokens": "explain_tokens",
            "cost": "explain_cost",
        }
    )
    out = ex[["feature", "explanation", "explanation_ok", "explanation_error", "explain_tokens", "explain_cost"]].merge(
        scores, on="feature", how="left"
    )
    out[["n_pos", "n_neg", "failures", "judge_tokens"]] = (
        out[["n_pos", "n_neg", "failures", "judge_tokens"]].fillna(0).astype(int)
    )
    out["judge_cost"] = out["judge_cost"].fillna(0.0)
    out["failures"] += (~out["explanation_ok"]).astype(int)
    if policy == "wrong":  # a feature left unexplained is a wrong answer, not a missing one
        failed = ~out["explanation_ok"].astype(bool)
        out.loc[failed, ["balanced_accuracy", "auroc", "detection_score"]] = 0.0
    out["tokens"] = out["explain_tokens"] + out["judge_tokens"]
    out["cost"] = out["explain_cost"] + out["judge_cost"]
    return out


def summarise(scores: pd.DataFrame, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """Per-method summary: means with bootstrap CIs over features (NaN features left out)."""
    out = {
        "n_scored": int(scores["balanced_accuracy"].notna().sum()),
        "n_features": int(len(scores)),
        "explanation_failures": int((~scores["explanation_ok"]).sum()),
        "failures": int(scores["failures"].sum()),
        "tokens": int(scores["tokens"].sum()),
        "cost": float(scores["cost"].sum()),
        "ci": ci,
        "n_boot": n_boot,
    }
    for m in ("balanced_accuracy", "auroc", "detection_score"):
        mean, lo, hi = bootstrap_ci(scores[m].to_numpy(float), n_boot, ci, seed)
        out.update({m: mean, f"{m}_lo": lo, f"{m}_hi": hi})
    return out


def _runs(scores: pd.Series, replicate: pd.Series | None) -> list[np.ndarray]:
    """The scores of each training run (one run without a replicate column)."""
    if replicate is None:
        return [scores.to_numpy(float)]
    return [s.to_numpy(float) for _, s in scores.groupby(replicate, sort=True)]


def compare_to_baseline(
    table: pd.DataFrame,
    scores=("balanced_accuracy",),
    baseline: str = "random",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    run_summaries: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (site[, explainer], dict, metric) of a per-feature score table
    (``collect_interp``), for each column in `scores` present in it: ``mean`` over training
    runs of each run's mean over features, with a hierarchical bootstrap CI (``lo``, ``hi``:
    runs, then features within a run; `diffdict.bootstrap`), and, where the site has a
    dictionary of kind `baseline`, the difference to it with the CI of the difference (with several,
    to the one at the method's own budget, `diffdict.budget.matched_null`, from the runs' ``l0`` in
    `run_summaries`; without them, the first); ``separated`` means that CI excludes 0. Sites without
    the baseline (e.g. an MLP site) get NaN differences. ``replicate_means`` lists each run's mean, so
    the spread stays visible.
    `run_summaries`: the runs' ``summary.json`` collected (``tables/interp_runs.csv``); with it each row also
    counts, over the runs, the method's ``latents`` and those the protocol left out as ``left_out_dense``
    (firing on too many held-out images to be judged) and ``left_out_rare``, so a score is read
    beside how much of the dictionary it covers."""
    scores = [scores] if isinstance(scores, str) else list(scores)
    keys = ["site", *(["explainer"] if "explainer" in table.columns else [])]
    rows = []
    for group, g in table.groupby(keys, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        kinds = g.drop_duplicates("dict").set_index("dict")["kind"] if "kind" in g.columns else {}
        for score in (m for m in scores if m in g.columns):
            runs = {d: _runs(h[score], h.get("replicate")) for d, h in g.groupby("dict", sort=False)}
            nulls = [d for d in runs if kinds.get(d, d) == baseline]
            budgets = {d: _budget(run_summaries, dict(zip(keys, group)), d) for d in runs}
            for d, rs in runs.items():
                base = d if d in nulls else matched_null(d, nulls, budgets)
                m, lo, hi = hierarchical_ci(rs, n_boot=n_boot, ci=ci, seed=seed)
                diff = (
                    hierarchical_ci(rs, runs[base], n_boot=n_boot, ci=ci, seed=seed)
                    if base and d != base
                    else (np.nan,) * 3
                )
                rows.append(
                    {
                        **dict(zip(keys, group)),
                        "dict": d,
                        "kind": kinds.get(d, d),
                        "metric": score,
                        "n_features": int(sum(np.isfinite(r).sum() for r in rs)),
                        "replicates": len(rs),
                        "replicate_means": " / ".join(f"{np.nanmean(r):.3f}" for r in rs),
                        "mean": m,
                        "lo": lo,
                        "hi": hi,
                        **_failures(g[g["dict"] == d]),
                        **_left_out(run_summaries, dict(zip(keys, group)), d),
                        "baseline": base,
                        f"diff_vs_{baseline}": diff[0],
                        "diff_lo": diff[1],
                        "diff_hi": diff[2],
                        "separated": bool(np.isfinite(diff[1]) and (diff[1] > 0 or diff[2] < 0)),
                    }
                )
    if not rows:  # nothing judged anywhere: keep the header, so readers get an empty table, not an empty file
        fixed = ["dict", "kind", "metric", "n_features", "replicates", "replicate_means", "mean", "lo", "hi"]
        extra = [*_failures(table), *(LEFT_OUT.values() if run_summaries is not None else [])]
        return pd.DataFrame(
            columns=[*keys, *fixed, *extra, "baseline", f"diff_vs_{baseline}", "diff_lo", "diff_hi", "separated"]
        )
    return pd.DataFrame(rows)


# summary.json keys (`interp.protocol.build_tasks` info) -> interp summary columns
LEFT_OUT = {"n_features_total": "latents", "n_ineligible_dense": "left_out_dense", "n_ineligible_rare": "left_out_rare"}


def _runs_of(runs: pd.DataFrame, keys: dict, d: str) -> pd.DataFrame:
    """The run summaries of method `d` in the group `keys` (site[, explainer]; a key the table lacks is skipped)."""
    h = runs[runs["dict"] == d]
    for k, v in keys.items():
        h = h[h[k] == v] if k in h.columns else h
    return h


def _left_out(runs: pd.DataFrame | None, keys: dict, d: str) -> dict:
    """The method's latents over its runs and how many the protocol left out, and why."""
    if runs is None:
        return {}
    h = _runs_of(runs, keys, d)
    return {col: (int(h[key].sum()) if key in h.columns and h[key].notna().all() and len(h) else np.nan)
            for key, col in LEFT_OUT.items()}  # fmt: skip


def _budget(runs: pd.DataFrame | None, keys: dict, d: str) -> float:
    """The method's mean active latents per token over its runs (their ``l0``); NaN where unrecorded."""
    if runs is None or "l0" not in runs.columns:
        return np.nan
    h = _runs_of(runs, keys, d)
    return float(h["l0"].mean()) if len(h) and h["l0"].notna().all() else np.nan


def _failures(h: pd.DataFrame) -> dict:
    """Failed explanations and judgements of one method, reported beside its score."""
    out = {}
    if "explanation_ok" in h.columns:
        out["explanation_failures"] = int((~h["explanation_ok"].astype(bool)).sum())
    if "failures" in h.columns:
        out["failures"] = int(h["failures"].sum())
    return out
