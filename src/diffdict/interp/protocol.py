"""The detection protocol: which features, which images for the explainer, which for the judge.

One procedure for every method (SAE, ITDA, neurons, random):

1. Images (prompt ids) of the interpretation split are split once, seeded, into an
   *explanation* subset and a *held-out* subset (``explain_fraction``). Because the split is by
   image and shared by all features, the judge never sees an image the explainer saw — the
   paper's code judged the very images it had explained (score leak). `FeatureTask.check`
   enforces disjointness at run time.
2. Eligible features: ≥ ``min_active_tokens`` active tokens (see `stats`), ≥ ``n_explain``
   positive images in the explanation subset, ≥ ``n_pos`` positive and ≥ ``n_neg`` negative
   images in the held-out subset. A positive image has ≥ ``min_active_per_image`` active
   tokens; a negative image has a maximum below the feature's ``neg_threshold`` (see `stats`).
3. ``n_features`` eligible features are sampled with a seeded generator.
4. Per feature: explainer = its top ``n_explain`` explanation-subset images (by maximum
   activation) and ``n_explain_neg`` random non-activating ones (used by grounded explainers
   only); judge = ``n_pos`` held-out positives and ``n_neg`` held-out negatives. Positives are
   the feature's top held-out images (``positives: top``, the paper's choice) or one from each
   of ``n_pos`` equal strata of its held-out positive images ranked by maximum
   (``quantiles``, the detection scoring of Paulo et al. 2024): an explanation must then also
   cover the feature's weaker activations, which a polysemantic direction's top images hide.
   Negatives are random
   (``negatives: random``), top held-out images of other sampled features on which this one is
   inactive (``other``, as in the paper), or half of each (``mixed``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd

from ..settings import defaults, setting

Positives = Literal["top", "quantiles"]
Negatives = Literal["random", "other", "mixed"]
CHOICES = {"positives": get_args(Positives), "negatives": get_args(Negatives)}


@dataclass
class ProtocolSettings:
    """The sampling protocol: which features are explained and which images each party sees."""

    seed: int = setting(0, "seed of the image split, the feature sample and the negatives")
    n_features: int = setting(50, "features sampled (seeded) among the eligible ones", minimum=1)
    explain_fraction: float = setting(
        0.5,
        "share of the interp images the explainer may see; the rest are held out",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    min_active_tokens: int = setting(6, "eligible: fires on at least this many tokens", minimum=1)
    min_active_per_image: int = setting(1, "an image is a positive when this many of its tokens fire", minimum=1)
    n_explain: int = setting(
        5, "top explanation-subset images shown to the explainer (and needed to be eligible)", minimum=1
    )
    n_explain_neg: int = setting(10, "non-activating explanation-subset images shown to the explainer", minimum=0)
    n_mid: int = setting(3, "mid-quantile images on the feature's card", minimum=0)
    n_pos: int = setting(5, "held-out positives the judge scores (and needed to be eligible)", minimum=1)
    n_neg: int = setting(5, "held-out negatives the judge scores (and needed to be eligible)", minimum=1)
    positives: Positives = setting("top", "top: the top held-out images (the paper); quantiles: one per stratum")
    negatives: Negatives = setting(
        "random", "random non-activating images, other features' top images (the paper's), or half of each"
    )


DEFAULTS = defaults(ProtocolSettings)


def min_interp_images(cfg: dict) -> int:
    """The fewest interpretation images with which any feature can be eligible (step 2): the
    explanation subset (`split_images`) must hold ``n_explain`` images and the held-out subset
    ``n_pos`` + ``n_neg``. Fewer, and the stage can explain nothing, whatever the dictionary."""
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    held = c["n_pos"] + c["n_neg"]
    n = max(1, c["n_explain"] + held)
    while (e := _explain_count(n, c["explain_fraction"])) < c["n_explain"] or n - e < held:  # the split's rounding
        n += 1
    return n


class LeakError(AssertionError):
    """The judge would see an image the explainer saw."""


@dataclass
class FeatureTask:
    feature: int
    explain: list[int]  # top explanation-subset images (shown with heatmaps)
    explain_neg: list[int]  # non-activating explanation-subset images
    mid: list[int]  # mid-quantile explanation-subset images (cards only)
    positives: list[int]  # held-out
    negatives: list[int]  # held-out
    negative_kinds: list[str] = field(default_factory=list)
    vmax: float = 1.0  # colour scale shared by the feature's panels

    def check(self) -> None:
        seen = set(self.explain) | set(self.explain_neg) | set(self.mid)
        judged = set(self.positives) | set(self.negatives)
        if seen & judged:
            raise LeakError(f"feature {self.feature}: judge images {sorted(seen & judged)} were shown to the explainer")
        if set(self.positives) & set(self.negatives):
            raise LeakError(
                f"feature {self.feature}: images {sorted(set(self.positives) & set(self.negatives))} "
                "are both positive and negative"
            )


def check_choices(c: dict, choices: dict = CHOICES) -> None:
    """Each ``choices`` key of the config ``c`` holds one of its valid values (else ValueError naming them)."""
    for key, valid in choices.items():
        if c[key] not in valid:
            raise ValueError(f"interp.{key} '{c[key]}' is not one of {list(valid)}")


def _explain_count(n_images: int, explain_fraction: float) -> int:
    """How many of `n_images` interp images go to the explanation subset; the rest are held out."""
    if not 0 < explain_fraction < 1:
        raise ValueError(f"interp.explain_fraction must be in (0, 1), got {explain_fraction}")
    return int(round(explain_fraction * n_images))


def split_images(prompt_ids, explain_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the unique prompt ids -> (explanation subset, held-out subset), each sorted."""
    ids = np.unique(np.asarray(prompt_ids, np.int64))
    n = _explain_count(len(ids), explain_fraction)
    perm = np.random.default_rng([seed, 1]).permutation(len(ids))
    return np.sort(ids[perm[:n]]), np.sort(ids[perm[n:]])


def _image_flags(features: pd.DataFrame, images: pd.DataFrame, held_ids, c: dict) -> pd.DataFrame:
    """`images` (one row per feature x image) with ``held``, ``pos`` (a positive) and ``fires``
    (not a negative: its maximum reaches the feature's ``neg_threshold``)."""
    im = images.assign(held=images["prompt_id"].isin(held_ids).to_numpy())
    im["pos"] = im["n_active"] >= c["min_active_per_image"]
    thr = features.set_index("feature")["neg_threshold"]
    im["fires"] = ~(im["max"].to_numpy() < thr.reindex(im["feature"]).to_numpy())
    return im


def eligibility(features: pd.DataFrame, images: pd.DataFrame, held_ids, cfg: dict) -> pd.DataFrame:
    """Why each feature can or cannot be explained and judged (step 2 of the module doc): one row
    per feature with ``reason`` "" (eligible), "rare" (too few active tokens or positive images)
    or "dense" (fires on so many held-out images that fewer than ``n_neg`` negatives remain: a
    feature active on nearly every image cannot be judged by detection). The rule is one for every
    method, but the share it leaves out is not: it is reported (``tasks.json`` info) beside the scores."""
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    return _eligibility(features, _image_flags(features, images, held_ids, c), held_ids, c)


def _eligibility(features: pd.DataFrame, im: pd.DataFrame, held_ids, c: dict) -> pd.DataFrame:
    """`eligibility` on images already flagged (`_image_flags`) with the full settings `c`."""
    pos, F = im[im["pos"]], len(features)
    n_pos_exp = np.bincount(pos["feature"][~pos["held"]], minlength=F)
    n_pos_held = np.bincount(pos["feature"][pos["held"]], minlength=F)
    n_neg_held = len(np.unique(held_ids)) - np.bincount(im["feature"][im["held"] & im["fires"]], minlength=F)
    rare = (
        (features["n_active_tokens"].to_numpy() < c["min_active_tokens"])
        | (n_pos_exp < c["n_explain"])
        | (n_pos_held < c["n_pos"])
    )
    dense = ~rare & (n_neg_held < c["n_neg"])
    return pd.DataFrame(
        {
            "feature": features["feature"].to_numpy(),
            "reason": np.where(rare, "rare", np.where(dense, "dense", "")),
            "n_pos_explain": n_pos_exp,
            "n_pos_heldout": n_pos_held,
            "n_neg_heldout": n_neg_held,
        }
    )


def build_tasks(features: pd.DataFrame, images: pd.DataFrame, all_ids, cfg: dict) -> tuple[list[FeatureTask], dict]:
    """Sample features and choose their examples (see module doc). Returns (tasks, info)."""
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    check_choices(c)
    explain_ids, held_ids = split_images(all_ids, c["explain_fraction"], c["seed"])
    im = _image_flags(features, images, held_ids, c)
    pos = im[im["pos"]]
    F = len(features)
    why = _eligibility(features, im, held_ids, c)
    eligible = np.flatnonzero(why["reason"].to_numpy() == "")
    rng = np.random.default_rng([c["seed"], 2])
    chosen = np.sort(rng.choice(eligible, size=min(c["n_features"], len(eligible)), replace=False))

    # sorted per feature by decreasing max: groups for the chosen features only
    ranked = pos[pos["feature"].isin(chosen)].sort_values(
        ["feature", "max", "prompt_id"], ascending=[True, False, True]
    )
    groups = {f: g for f, g in ranked.groupby("feature", sort=False)}
    fires = {f: set(g["prompt_id"]) for f, g in im[im["feature"].isin(chosen) & im["fires"]].groupby("feature")}
    tasks = []
    for f in chosen:
        g = groups[f]
        exp, held = g[~g["held"]], g[g["held"]]
        top = exp["prompt_id"].to_numpy()[: c["n_explain"]]
        rest = exp.iloc[c["n_explain"] :]
        mid = rest["prompt_id"]
        if len(rest):  # closest to the median of the remaining images' maxima
            mid = mid.iloc[np.argsort(np.abs(rest["max"].to_numpy() - np.median(rest["max"])), kind="stable")]
        exp_neg = np.setdiff1d(explain_ids, list(fires.get(f, set())))
        tasks.append(
            FeatureTask(
                feature=int(f),
                explain=top.tolist(),
                explain_neg=rng.choice(exp_neg, min(c["n_explain_neg"], len(exp_neg)), replace=False).tolist(),
                mid=sorted(mid.to_numpy()[: c["n_mid"]].tolist()),
                positives=_positives(held["prompt_id"].to_numpy(), c["n_pos"], c["positives"], rng),
                negatives=[],
                vmax=float(g["max"].max()),
            )
        )
    # negatives after all positives are known ("other" draws from other features' positives)
    n_other = {"random": 0, "other": c["n_neg"], "mixed": c["n_neg"] // 2}[c["negatives"]]
    all_pos = np.unique(np.array([p for t in tasks for p in t.positives], np.int64))
    for t in tasks:
        held_neg = np.setdiff1d(held_ids, list(fires.get(t.feature, set())))
        others = np.intersect1d(all_pos, held_neg)  # other features' top images on which this one is silent
        other = rng.choice(others, min(n_other, len(others)), replace=False)
        rand = rng.choice(np.setdiff1d(held_neg, other), c["n_neg"] - len(other), replace=False)
        t.negatives = [*map(int, other), *map(int, rand)]
        t.negative_kinds = ["other"] * len(other) + ["random"] * len(rand)
        t.check()
    info = {
        "n_features_total": F,
        "n_eligible": int(len(eligible)),
        "n_ineligible_rare": int((why["reason"] == "rare").sum()),
        "n_ineligible_dense": int((why["reason"] == "dense").sum()),
        "n_alive": int((features["n_nonzero_tokens"] > 0).sum()),
        "n_sampled": len(tasks),
        "n_explain_images": len(explain_ids),
        "n_heldout_images": len(held_ids),
        "explain_ids": explain_ids.tolist(),
        "heldout_ids": held_ids.tolist(),
        "config": c,
    }
    if set(info["explain_ids"]) & set(info["heldout_ids"]):
        raise LeakError("explanation and held-out image subsets overlap")
    return tasks, info


def _positives(ranked: np.ndarray, n: int, kind: str, rng: np.random.Generator) -> list[int]:
    """``n`` of a feature's held-out positive images (ranked by decreasing maximum)."""
    if kind == "top" or len(ranked) <= n:
        return ranked[:n].tolist()
    edges = np.linspace(0, len(ranked), n + 1).astype(int)  # n equal strata, strongest first
    return [int(ranked[rng.integers(a, b)]) for a, b in zip(edges[:-1], edges[1:])]


def tasks_to_json(tasks: list[FeatureTask]) -> list[dict]:
    return [asdict(t) for t in tasks]


def tasks_from_json(rows: list[dict]) -> list[FeatureTask]:
    tasks = [FeatureTask(**r) for r in rows]
    for t in tasks:
        t.check()
    return tasks
