"""Per-method summary of the held-out concept-recovery table (``tables/concepts.csv``).

One row per (site, dictionary, metric): the mean over concepts of a held-out score, averaged
over the dictionary's training runs, with a hierarchical bootstrap CI (runs, then concepts;
concepts are paired across runs and methods, see `diffdict.bootstrap`), the same for the
concepts an image token can show by itself (``core_``; ``CORE_KINDS``: colour, shape,
background), the difference to the random-direction baseline at the same site with its CI, and
the linear-probe ceiling (``probe``, ``core_probe``).
"separated" means the CI of the difference excludes 0 (its sign says which way).
``shared_best_feature``: the most concepts whose chosen feature is one and the same (mean over
runs). A feature that is best for many concepts at once answers "is an object here", not "which
concept": over all tokens a foreground detector scores well for every object concept.
``l0``: the mean active latents per token the scores were reached with (mean over runs; NaN for a
table without the column). Where a site has several random-direction dictionaries, each method's
difference is to the one at its own budget (`diffdict.budget.matched_null`), named in ``baseline``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..bootstrap import hierarchical_ci
from ..budget import matched_null
from ..world.scene import concept_kind

# Concepts a single token carries: what is at this token (its colour, its shape's part, the
# background). Size and position are relations of a whole object to the image.
CORE_KINDS = ("color", "shape", "background")


def _by_run(g: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of each replicate, in replicate order (one run when the table has no column)."""
    rep = g["replicate"] if "replicate" in g.columns else pd.Series(0, index=g.index)
    return [h for _, h in g.groupby(rep, sort=True)]


def core_concepts(concepts) -> list[str]:
    """The concepts of `concepts` (in order) that a single token carries (`CORE_KINDS`)."""
    concepts = list(concepts)
    return [c for c, k in zip(concepts, concept_kind(pd.Series(concepts, dtype=object))) if k in CORE_KINDS]


def run_means(g: pd.DataFrame, metric: str, concepts: list[str]) -> list[float]:
    """Each replicate's mean of `metric` over `concepts` (the rows of one dictionary)."""
    return [float(np.nanmean(r)) for r in _runs(g, metric, concepts)]


def _runs(g: pd.DataFrame, metric: str, concepts: list[str]) -> list[np.ndarray]:
    """One array of `metric` per replicate, aligned to `concepts` (NaN where absent)."""
    return [h.set_index("concept")[metric].reindex(concepts).to_numpy(float) for h in _by_run(g)]


def with_probe_columns(table: pd.DataFrame, probes: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The concept table with each site's probe ceiling (``probe_*`` columns of `probes[site]`,
    one row per concept) beside every dictionary's rows; earlier probe columns are replaced."""
    probe = pd.concat([p.assign(site=site) for site, p in probes.items()], ignore_index=True)
    table = table.drop(columns=[c for c in probe.columns if c.startswith("probe_")], errors="ignore")
    return table.merge(probe, on=["site", "concept"], how="left")


METRICS = ("token_auroc", "kind_token_auroc", "token_f1", "image_auroc")
# The column holding the feature each metric scores (the others score the all-token choice).
FEATURE_COLUMN = {"kind_token_auroc": "kind_feature"}


def budget(h: pd.DataFrame) -> float:
    """Mean over runs of each run's active latents per token (``l0``); NaN without the column."""
    if "l0" not in h.columns or h["l0"].isna().all():
        return np.nan
    return float(np.nanmean([r["l0"].mean() for r in _by_run(h)]))


def shared_best_feature(h: pd.DataFrame, metric: str = "token_auroc") -> float:
    """Most concepts sharing one chosen feature, mean over runs; NaN without a feature column."""
    col = FEATURE_COLUMN.get(metric, "feature")
    if col not in h.columns or h[col].isna().all():
        return np.nan
    return float(np.mean([r[col].value_counts().max() for r in _by_run(h) if r[col].notna().any()]))


def summarize_concepts(
    table: pd.DataFrame, metrics=METRICS, baseline: str = "random", n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """One row per (site, dict, metric), for each of `metrics` in the table."""
    need = {"site", "dict", "concept"}
    if missing := sorted(need - set(table.columns)):
        raise ValueError(f"concept table lacks columns {missing}")
    rows = []
    for site, g in table.groupby("site", sort=True):
        concepts = sorted(g["concept"].unique())
        core = core_concepts(concepts)
        kinds = g.drop_duplicates("dict").set_index("dict")["kind"] if "kind" in g.columns else pd.Series(dtype=str)
        per = {d: h for d, h in g.groupby("dict", sort=False)}
        nulls = [d for d in per if kinds.get(d, d) == baseline]
        budgets = {d: budget(h) for d, h in per.items()}
        for metric in (m for m in metrics if m in g.columns):
            probe = (
                g.drop_duplicates("concept").set_index("concept")[f"probe_{metric}"]
                if f"probe_{metric}" in g.columns
                else None
            )
            for d, h in per.items():
                base = d if d in nulls else matched_null(d, nulls, budgets)
                runs = _runs(h, metric, concepts)
                est, lo, hi = hierarchical_ci(runs, paired=True, n_boot=n_boot, ci=ci, seed=seed)
                c_est, c_lo, c_hi = (
                    hierarchical_ci(_runs(h, metric, core), paired=True, n_boot=n_boot, ci=ci, seed=seed)
                    if core
                    else (np.nan,) * 3
                )
                diff = (
                    hierarchical_ci(
                        runs, _runs(per[base], metric, concepts), paired=True, n_boot=n_boot, ci=ci, seed=seed
                    )
                    if base is not None and d != base
                    else (np.nan,) * 3
                )
                rows.append(
                    {
                        "site": site,
                        "dict": d,
                        "kind": kinds.get(d, d),
                        "metric": metric,
                        "replicates": len(runs),
                        "n_concepts": len(concepts),
                        "replicate_means": " / ".join(f"{np.nanmean(r):.3f}" for r in runs),
                        "mean": est,
                        "lo": lo,
                        "hi": hi,
                        "core_mean": c_est,
                        "core_lo": c_lo,
                        "core_hi": c_hi,
                        "baseline": base,
                        f"diff_vs_{baseline}": diff[0],
                        "diff_lo": diff[1],
                        "diff_hi": diff[2],
                        "separated": bool(np.isfinite(diff[1]) and (diff[1] > 0 or diff[2] < 0)),
                        "probe": float(probe.reindex(concepts).mean()) if probe is not None else np.nan,
                        "core_probe": float(probe.reindex(core).mean()) if probe is not None and core else np.nan,
                        "shared_best_feature": shared_best_feature(h, metric),
                        "l0": budgets[d],
                    }
                )
    return pd.DataFrame(rows)
