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

import numpy as np
import pandas as pd

FAILURE_POLICIES = ("exclude", "wrong")


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
    """(mean, low, high): percentile bootstrap of the mean over the finite `values`."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    a = (1 - ci) / 2
    return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def feature_scores(judgements: pd.DataFrame, explanations: pd.DataFrame, policy: str = "exclude") -> pd.DataFrame:
    """Per-feature rows from the judgement table (feature, label, score, ok, tokens, cost, ...)."""
    rows = []
    for f, g in judgements.groupby("feature", sort=True):
        lab, sc, ok = g["label"].to_numpy(int), g["score"].to_numpy(float), g["ok"].to_numpy(bool)
        lab_u, sc_u = apply_failures(lab, np.nan_to_num(sc), ok, policy)
        rows.append({"feature": int(f), "n_pos": int((lab == 1).sum()), "n_neg": int((lab == 0).sum()),
                     "balanced_accuracy": balanced_accuracy(lab_u, sc_u), "auroc": auroc(lab_u, sc_u),
                     "detection_score": detection_score(lab_u, sc_u), "failures": int((~ok).sum()),
                     "judge_tokens": int(g["tokens"].sum()), "judge_cost": float(g["cost"].sum())})
    scores = pd.DataFrame(rows, columns=["feature", "n_pos", "n_neg", "balanced_accuracy", "auroc", "detection_score",
                                         "failures", "judge_tokens", "judge_cost"])
    ex = explanations.rename(columns={"ok": "explanation_ok", "error": "explanation_error", "tokens": "explain_tokens",
                                      "cost": "explain_cost"})
    out = ex[["feature", "explanation", "explanation_ok", "explanation_error", "explain_tokens", "explain_cost"]].merge(
        scores, on="feature", how="left")
    out[["n_pos", "n_neg", "failures", "judge_tokens"]] = out[["n_pos", "n_neg", "failures", "judge_tokens"]].fillna(0).astype(int)
    out["judge_cost"] = out["judge_cost"].fillna(0.0)
    out["failures"] += (~out["explanation_ok"]).astype(int)
    out["tokens"] = out["explain_tokens"] + out["judge_tokens"]
    out["cost"] = out["explain_cost"] + out["judge_cost"]
    return out


def summarise(scores: pd.DataFrame, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """Per-method summary: means with bootstrap CIs over features (NaN features left out)."""
    out = {"n_scored": int(scores["balanced_accuracy"].notna().sum()), "n_features": int(len(scores)),
           "explanation_failures": int((~scores["explanation_ok"]).sum()),
           "failures": int(scores["failures"].sum()), "tokens": int(scores["tokens"].sum()),
           "cost": float(scores["cost"].sum()), "ci": ci, "n_boot": n_boot}
    for m in ("balanced_accuracy", "auroc", "detection_score"):
        mean, lo, hi = bootstrap_ci(scores[m].to_numpy(float), n_boot, ci, seed)
        out.update({m: mean, f"{m}_lo": lo, f"{m}_hi": hi})
    return out


def difference_ci(a, b, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): percentile bootstrap, `a` and `b` resampled independently
    (different features of different dictionaries: an unpaired comparison)."""
    a, b = (np.asarray(v, float) for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    d = (a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(1)
         - b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(1))
    q = (1 - ci) / 2
    return float(a.mean() - b.mean()), float(np.quantile(d, q)), float(np.quantile(d, 1 - q))


def _replicate_means(scores: pd.Series, replicate: pd.Series | None) -> list[float]:
    """Mean score of each training run (NaN scores left out); one run without a replicate column."""
    if replicate is None:
        return [float(scores.mean())]
    return [float(s.mean()) for _, s in scores.groupby(replicate, sort=True)]


def compare_to_baseline(table: pd.DataFrame, score: str = "balanced_accuracy", baseline: str = "random",
                        n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (site[, explainer], dict) of a per-feature score table (``collect_interp``):
    mean with bootstrap CI over features and, where the site has a dictionary of kind `baseline`,
    the difference to it with its own bootstrap CI and ``separated`` (the two CIs do not overlap,
    the stricter test). Sites without the baseline (e.g. an MLP site) get NaN differences.
    With a ``replicate`` column (several training runs of a dictionary), the features of all
    replicates are pooled; ``replicates`` counts them and ``replicate_means`` lists each one's
    mean, so the spread between runs stays visible."""
    keys = ["site", *(["explainer"] if "explainer" in table.columns else [])]
    rows = []
    for group, g in table.groupby(keys, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        per = {d: h[score].to_numpy(float) for d, h in g.groupby("dict", sort=False)}
        kinds = g.drop_duplicates("dict").set_index("dict")["kind"] if "kind" in g.columns else {}
        base = next((d for d in per if kinds.get(d, d) == baseline), None)
        cis = {d: bootstrap_ci(v, n_boot, ci, seed) for d, v in per.items()}
        b_ci = cis[base] if base else (np.nan,) * 3
        reps = {d: _replicate_means(h[score], h.get("replicate")) for d, h in g.groupby("dict", sort=False)}
        for d, v in per.items():
            m, lo, hi = cis[d]
            diff = difference_ci(v, per[base], n_boot, ci, seed) if base and d != base else (np.nan,) * 3
            rows.append({**dict(zip(keys, group)), "dict": d, "kind": kinds.get(d, d),
                         "n_features": int(np.isfinite(v).sum()), "replicates": len(reps[d]),
                         "replicate_means": " / ".join(f"{x:.3f}" for x in reps[d]),
                         score: m, f"{score}_lo": lo, f"{score}_hi": hi,
                         "baseline": base, f"diff_vs_{baseline}": diff[0], "diff_lo": diff[1], "diff_hi": diff[2],
                         "separated": bool(base and d != base and (lo > b_ci[2] or hi < b_ci[1]))})
    return pd.DataFrame(rows)
