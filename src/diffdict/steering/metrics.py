"""Steering success, measured: did the image move toward the feature's explanation, and how
much else changed?

Two graders share one output table (one row per steered cell, `METRIC_COLUMNS`):

- shapes world (`annotator_metrics`): the world's annotator names each image's concepts
  (``"color=red"``, ``"shape=circle"``...). The explanation is mapped to target concepts;
  ``concept_hit`` is 1 when the steered image shows them, ``shift`` is that minus the same test on
  the unsteered image (so the mean of ``shift`` is the hit rate gained by steering), and
  ``change_elsewhere`` is the fraction of the *other* annotated attributes whose value changed.
- real models (`judge_metrics`): a judge compares the steered with the unsteered image,
  ``judge(steered, unsteered, explanation) -> p`` in [0, 1], the probability that the steered
  image shows the explanation *more* (0.5: no difference). ``concept_hit = p``,
  ``shift = 2p - 1`` (same [-1, 1] range as above); ``change_elsewhere`` is ``pixel_change``.

``pixel_change`` (both graders) is the mean squared pixel difference to the unsteered image, on
a [0, 1] intensity scale: a model-free proxy for how much of the image was rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import numpy as np
import pandas as pd

from ..bootstrap import hierarchical_ci
from .grid import SteeringRun

RANDOM_KIND = "random"  # the null dictionary's kind

METRIC_COLUMNS = (
    "feature",
    "explanation",
    "target",
    "strength",
    "prompt_id",
    "concept_hit",
    "shift",
    "change_elsewhere",
    "pixel_change",
    "method",
    "graded_against",
)


class Judge(Protocol):
    def __call__(self, steered: np.ndarray, unsteered: np.ndarray, explanation: str) -> float:
        """Probability in [0, 1] that `steered` (uint8 [H, W, 3]) shows `explanation` more than
        `unsteered` does; 0.5 when neither does more."""


Annotate = Callable[[np.ndarray], list]  # uint8 [B, H, W, 3] -> list of sets of "attr=value"


def judge_from_scorer(score: Callable[[np.ndarray, str], float]) -> Judge:
    """Adapt a single-image scorer (the interp judges: ``score(image, explanation)`` in [0, 1])
    into a pairwise `Judge`: 0.5 plus half the score gained by steering."""

    def judge(steered: np.ndarray, unsteered: np.ndarray, explanation: str) -> float:
        p = 0.5 + 0.5 * (score(steered, explanation) - score(unsteered, explanation))
        return float(np.clip(p, 0, 1)) if np.isfinite(p) else float("nan")

    return judge


def judge_from_backend(backend) -> Judge:
    """Adapt an interp `Backend` (``backend.judge(Explanation, Example) -> Judgement``, one
    image at a time) into a pairwise `Judge`; a failed judgement gives NaN."""
    from ..interp.backends.base import Example, Explanation

    def score(image: np.ndarray, explanation: str) -> float:
        j = backend.judge(Explanation(feature=-1, text=explanation), Example(prompt_id=-1, image=image))
        return float(j.score) if j.ok and j.score is not None else float("nan")

    return judge_from_scorer(score)


def pixel_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two uint8 images on a [0, 1] intensity scale."""
    d = (a.astype(np.float32) - b.astype(np.float32)) / 255.0
    return float(np.mean(d * d))


def _split(concept: str) -> tuple[str, str]:
    attr, _, value = concept.partition("=")
    return attr.strip().lower(), value.strip().lower()


def explanation_targets(explanation: str, vocabulary: Iterable[str]) -> dict[str, set[str]]:
    """Concepts an explanation names, as ``{attribute: {values}}``.

    Explicit ``attr=value`` tokens win; otherwise each vocabulary value that the explanation
    names as a word (plural allowed; ``-``, ``_`` and spaces interchangeable) counts. Several values of one
    attribute are alternatives ("red or blue"); different attributes must all hold.
    """
    text = explanation.lower()
    explicit = re.findall(r"([a-z_]+)\s*=\s*([a-z0-9_\-]+)", text)
    targets: dict[str, set[str]] = {}
    if explicit:
        for attr, value in explicit:
            targets.setdefault(attr, set()).add(value)
        return targets
    for concept in vocabulary:
        attr, value = _split(concept)
        words = [re.escape(w) for w in re.split(r"[-_ ]+", value) if w]
        # "top-left" also matches "top left" / "top_left"; a plural "s"/"es" is allowed
        if words and re.search(r"\b" + r"[-_ ]+".join(words) + r"(s|es)?\b", text):
            targets.setdefault(attr, set()).add(value)
    return targets


def _attrs(concepts: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in concepts:
        attr, value = _split(c)
        out.setdefault(attr, set()).add(value)
    return out


def _hit(targets: dict[str, set[str]], attrs: dict[str, set[str]]) -> float:
    return float(all(attrs.get(a, set()) & vals for a, vals in targets.items()))


def _target_str(targets: dict[str, set[str]]) -> str:
    return " & ".join(f"{a}={'|'.join(sorted(v))}" for a, v in sorted(targets.items()))


def _explanations(run: SteeringRun, explanations: Mapping[int, str] | None) -> pd.Series:
    if explanations is None:
        return run.table["explanation"].fillna("").astype(str)
    return run.table["feature"].map(lambda f: explanations.get(int(f), "")).astype(str)


def annotator_metrics(
    run: SteeringRun,
    annotate: Annotate,
    explanations: Mapping[int, str] | None = None,
    vocabulary: Iterable[str] | None = None,
    concepts: Mapping[int, Iterable[str]] | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Grade a steering run with the shapes world's annotator (see the module docstring).

    Targets come from `concepts` (``{feature: ["color=red", ...]}``, the structured form the
    annotation explainer writes to ``explanations.parquet``) when a feature has them, else from
    the explanation text (`explanation_targets`). `vocabulary` lists the world's
    ``attr=value`` concepts (``diffdict.world.CONCEPTS``; default: every concept the annotator
    reports on these images or the explainer gave).
    Rows whose explanation names no known concept get NaN ``concept_hit``/``shift`` and an empty
    ``target`` (kept, so they are counted, not hidden).
    """
    used = np.unique(np.concatenate([run.table["image"], run.table["baseline_image"]]))
    annotations: dict[int, set[str]] = {}
    for i in range(0, len(used), batch_size):
        idx = used[i : i + batch_size]
        got = annotate(run.images[idx])
        if len(got) != len(idx):
            raise ValueError(f"annotator returned {len(got)} annotations for {len(idx)} images")
        annotations.update({int(j): {str(c) for c in a} for j, a in zip(idx, got)})
    given = [c for cs in (concepts or {}).values() for c in cs]
    vocab = set(vocabulary) if vocabulary is not None else set().union(*annotations.values(), given)
    expl = _explanations(run, explanations)
    own = {}
    for f, e in zip(run.table["feature"].astype(int), expl):
        named = list((concepts or {}).get(f, ()))
        own[f] = _attrs(named) if named else explanation_targets(e, vocab)
    # The null: every steered feature graded, on the same images, against each *other* value of
    # the attributes its target names (steered toward "color=green", graded against red, blue, ...),
    # averaged. Steering that moves a feature toward its own concept beats it; a strength that
    # just disturbs the image, or recolours it at random, does not. (Permuting the targets among
    # the steered features would be degenerate: they often share one colour.)
    values = _attrs(vocab)
    others = {
        f: [{a: {v}} for a, vals in t.items() for v in sorted(values.get(a, set()) - vals)] for f, t in own.items()
    }
    rows = []
    for r, e in zip(run.table.itertuples(), expl):
        steered, base = _attrs(annotations[r.image]), _attrs(annotations[r.baseline_image])
        change = pixel_change(run.images[r.image], run.images[r.baseline_image])
        for against, alternatives in (("own", [own[int(r.feature)]]), ("other_value", others[int(r.feature)])):
            alternatives = [t for t in alternatives if t]
            if against != "own" and not alternatives:
                continue
            if alternatives:
                hit = float(np.mean([_hit(t, steered) for t in alternatives]))
                shift = hit - float(np.mean([_hit(t, base) for t in alternatives]))
            else:
                hit = shift = np.nan
            targets = alternatives[0] if against == "own" and alternatives else {}
            rest = (set(steered) | set(base)) - set(targets or own[int(r.feature)])
            changed = [a for a in rest if steered.get(a) != base.get(a)]
            rows.append(
                {
                    "feature": int(r.feature),
                    "explanation": e,
                    "target": _target_str(targets)
                    if against == "own"
                    else " | ".join(_target_str(t) for t in alternatives),
                    "strength": float(r.strength),
                    "prompt_id": int(r.prompt_id),
                    "concept_hit": hit,
                    "shift": shift,
                    "change_elsewhere": len(changed) / len(rest) if rest else np.nan,
                    "pixel_change": change,
                    "method": "annotator",
                    "graded_against": against,
                }
            )
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


SUMMARY_COLUMNS = (
    "graded_against",
    "n_features",
    "n_moved",
    "n_moved_positive",
    "mean_shift_positive",
    "shift_lo",
    "shift_hi",
    "minus_other",
    "minus_other_lo",
    "minus_other_hi",
    "minus_random",
    "minus_random_lo",
    "minus_random_hi",
)


def steering_summary(table: pd.DataFrame) -> pd.DataFrame:
    """ "N of M features move toward their concept", beside its nulls: one row per (site, dict,
    graded_against). A feature *moves* when its mean shift over prompts is above 0 at some
    non-zero strength; ``n_moved_positive`` counts positive strengths only. The same rule is
    applied to the ``other_value`` rows (the same steered images graded against the other values
    of the target's attribute) and to random directions (their own dictionary's rows), so each
    count has its chance level beside it.

    ``mean_shift_positive`` (the mean shift at positive strengths) has a 95 % bootstrap CI over
    features (``shift_lo`` / ``shift_hi``; only the first training run is steered, so features are
    the units); an ``own`` row adds its gap to the same features graded against the other values
    (``minus_other``, paired by feature) and to random directions' ``own`` row at the same site
    (``minus_random``), each with its CI."""
    keys = [k for k in ("site", "dict", "kind") if k in table.columns]
    t = table.assign(graded_against=table.get("graded_against", "own")).dropna(subset=["shift"])
    t = t[t["strength"] != 0]
    per = t.groupby([*keys, "graded_against", "feature", "strength"], as_index=False)["shift"].mean()
    # each feature's mean shift at positive strengths: the bootstrap's units
    by_feature = {
        key if isinstance(key, tuple) else (key,): g.groupby("feature")["shift"].mean()
        for key, g in per[per["strength"] > 0].groupby([*keys, "graded_against"], sort=True)
    }
    rows = []
    for key, g in per.groupby([*keys, "graded_against"], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip([*keys, "graded_against"], key))
        by_f = g.groupby("feature")
        pos = g[g["strength"] > 0].groupby("feature")["shift"].max()
        row.update(
            n_features=int(by_f.ngroups),
            n_moved=int((by_f["shift"].max() > 0).sum()),
            n_moved_positive=int((pos > 0).sum()),
            mean_shift_positive=float(g.loc[g["strength"] > 0, "shift"].mean()),
        )
        feats = by_feature.get(key)  # this row's features (own or other_value)
        if feats is not None and len(feats):
            _, row["shift_lo"], row["shift_hi"] = hierarchical_ci([feats.to_numpy()])
        if row["graded_against"] == "own" and feats is not None:
            other = by_feature.get((*key[:-1], "other_value"))
            if other is not None:
                both = pd.concat([feats, other], axis=1, join="inner")
                if len(both):
                    gap = hierarchical_ci([both.iloc[:, 0].to_numpy()], [both.iloc[:, 1].to_numpy()], paired=True)
                    row["minus_other"], row["minus_other_lo"], row["minus_other_hi"] = gap
            null = _random_own(by_feature, keys, row)
            if null is not None:
                gap = hierarchical_ci([feats.to_numpy()], [null.to_numpy()])
                row["minus_random"], row["minus_random_lo"], row["minus_random_hi"] = gap
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *SUMMARY_COLUMNS])


def _random_own(by_feature: dict, keys: list[str], row: dict) -> pd.Series | None:
    """Random directions' own-graded features at the row's site (none for random directions)."""
    if "kind" not in keys or row["kind"] == RANDOM_KIND:
        return None
    site = row.get("site")
    for key, feats in by_feature.items():
        k = dict(zip([*keys, "graded_against"], key))
        if k["kind"] == RANDOM_KIND and k.get("site") == site and k["graded_against"] == "own":
            return feats
    return None


def judge_metrics(run: SteeringRun, judge: Judge, explanations: Mapping[int, str] | None = None) -> pd.DataFrame:
    """Grade a steering run with a pairwise judge (see the module docstring). Unsteered cells
    are not sent to the judge: steered and unsteered are the same image, p = 0.5 exactly."""
    expl = _explanations(run, explanations)
    rows = []
    for r, e in zip(run.table.itertuples(), expl):
        steered, base = run.images[r.image], run.images[r.baseline_image]
        if r.image == r.baseline_image:
            p = 0.5
        else:
            p = float(judge(steered, base, e))
            if not (0.0 <= p <= 1.0 or np.isnan(p)):  # NaN: a failed judgement, kept as missing
                raise ValueError(f"judge returned {p} for feature {r.feature}; expected a probability in [0, 1]")
        change = pixel_change(steered, base)
        rows.append(
            {
                "feature": int(r.feature),
                "explanation": e,
                "target": e,
                "strength": float(r.strength),
                "prompt_id": int(r.prompt_id),
                "concept_hit": p,
                "shift": 2 * p - 1,
                "change_elsewhere": change,
                "pixel_change": change,
                "method": "judge",
                "graded_against": "own",
            }
        )
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
