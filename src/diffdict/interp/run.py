"""The interpretation stages, as the CLI calls them.

    feature_stats     dictionary + interp-split store -> codes.safetensors, stats.parquet, image_stats.parquet
    make_cards        -> tasks.json (split, sampled features, examples), cards/feature_XXXXXX.png
    explain_and_score -> explanations.parquet, judgements.parquet, scores.parquet/.csv, summary.json

Each stage reads the previous stage's files, so changing the explainer reruns only the last
stage (and its model answers come from the response cache). `run_interp` runs all three.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..atomic import atomic_path, write_json, write_parquet
from ..devices import resolve_device
from ..filenames import feature_file
from ..settings import defaults, resolve, setting
from . import render
from .backends import Example, Usage, make_backend, split_judge
from .cards import card_pairs, make_card
from .codes import CodeTable, encode_batches, store_batches
from .images import ShardImages
from .protocol import CHOICES, ProtocolSettings, build_tasks, check_choices, tasks_from_json, tasks_to_json
from .scoring import FAILURE_POLICIES, FailurePolicy, feature_scores, summarise
from .stats import feature_statistics, heatmaps

log = logging.getLogger("diffdict.interp")


@dataclass
class InterpSettings(ProtocolSettings):
    """The `interp` config section less `explainers`: the protocol and how the stage runs it."""

    batch_size: int = setting(4096, "tokens per encode batch", minimum=1)
    device: str = setting("cpu", "where the dictionary encodes: cpu | cuda | cuda:N | auto")
    codes_dtype: Literal["float32", "float16"] = setting("float32", "stored code values")
    quantiles: list[float] = setting(
        [0.5, 0.9, 0.99],
        "activation quantiles recorded per feature",
        items={"type": "number", "minimum": 0, "maximum": 1},
    )
    active_quantile: float = setting(
        0.5,
        "a token is active at >= this quantile of the feature's nonzero values",
        minimum=0,
        maximum=1,
    )
    negative_quantile: float = setting(
        0.0,
        "an image is negative when its max < this quantile (0: exactly zero)",
        minimum=0,
        maximum=1,
    )
    image_size: int = setting(256, "side of the images sent to the explainer and the judge", minimum=8)
    card_size: int = setting(160, "side of a card panel", minimum=8)
    failure_policy: FailurePolicy = setting(
        "exclude", "a failed explanation or judgement: left out, or scored as wrong"
    )
    n_boot: int = setting(1000, "bootstrap resamples of the confidence intervals", minimum=1)
    ci: float = setting(0.95, "confidence level", exclusiveMinimum=0, exclusiveMaximum=1)
    explainer: dict = setting(
        {"backend": "annotation"}, "the explainer backend's settings (the workflow: one of `explainers`)"
    )
    judge: dict | None = setting(None, "the judge's settings; null: the explainer's")
    cache_dir: str | None = setting(None, "response cache; null: {out_dir}/cache")


DEFAULTS = defaults(InterpSettings)

CODES, STATS, IMAGE_STATS, TASKS = "codes.safetensors", "stats.parquet", "image_stats.parquet", "tasks.json"


def with_explainer(interp: dict, explainer: dict, cache_dir: str | None = None) -> dict:
    """The interp settings of one configured explainer (`interp.explainers.{name}`, whose
    ``judge:`` names the judge's backend; without one the explainer judges)."""
    explainer, judge = split_judge(explainer)
    return {**interp, "explainer": explainer, "judge": judge, "cache_dir": cache_dir}


def resolve_config(cfg: dict | None) -> dict:
    c = resolve(InterpSettings, cfg, "interp")
    check_choices(c, {**CHOICES, "failure_policy": FAILURE_POLICIES})
    return c


def feature_stats(dictionary, store, out_dir, cfg: dict | None = None) -> Path:
    """Encode the interp split (a `Dictionary` or its path; an `ActivationStore` or its path)."""
    from ..store import ActivationStore

    c = resolve_config(cfg)
    out = Path(out_dir)
    if isinstance(dictionary, (str, Path)):  # a path (note: str has an .encode method too)
        from ..dictionaries.base import load_dictionary

        dictionary = load_dictionary(dictionary)
    if not hasattr(store, "batches"):
        store = ActivationStore.open(store)
    grid = store.attrs.get("grid")
    if not grid:
        raise ValueError(f"{getattr(store, 'path', store)}: store has no 'grid' attribute (image-token grid)")
    meta = {"dictionary_kind": getattr(dictionary, "kind", "?"), "site": store.attrs.get("site")}
    device = resolve_device(c["device"], "interp.device")
    codes = encode_batches(
        dictionary, store_batches(store, c["batch_size"]), grid, dtype=c["codes_dtype"], meta=meta, device=device
    )
    codes.save(out / CODES)
    st = feature_statistics(codes, c["quantiles"], c["active_quantile"], c["negative_quantile"])
    write_parquet(out / STATS, st.features)
    write_parquet(out / IMAGE_STATS, st.images)
    log.info(
        "interp: %d tokens encoded; %d/%d features alive",
        len(codes),
        int((st.features["n_nonzero_tokens"] > 0).sum()),
        codes.n_features,
    )
    return out


def make_cards(features_dir, shard_paths, cfg: dict | None = None, title: str = "") -> Path:
    """Sample features, choose their examples (tasks.json) and draw their cards."""
    c = resolve_config(cfg)
    d = Path(features_dir)
    codes = CodeTable.load(d / CODES)
    tasks, info = build_tasks(pd.read_parquet(d / STATS), pd.read_parquet(d / IMAGE_STATS), codes.prompt_id.numpy(), c)
    log.info(
        "interp: %d eligible features of %d (left out: %d rare, %d dense: too few negatives); sampled %d",
        info["n_eligible"],
        info["n_features_total"],
        info["n_ineligible_rare"],
        info["n_ineligible_dense"],
        len(tasks),
    )
    if not tasks:
        log.warning(
            "interp: no eligible feature: each needs >= n_pos (%d) held-out images it fires on and >= n_neg "
            "(%d) it does not, of %d held-out images; lower n_pos/n_neg or enlarge prompts.splits.interp",
            c["n_pos"],
            c["n_neg"],
            info["n_heldout_images"],
        )
    images = ShardImages(shard_paths)
    heat = heatmaps(codes, [p for t in tasks for p in card_pairs(t)])
    stats = pd.read_parquet(d / STATS).set_index("feature")
    with atomic_path(d / "cards", is_dir=True) as tmp:
        for t in tasks:
            s = stats.loc[t.feature]
            head = (
                f"{title} feature {t.feature}   freq {s['frequency']:.2e}   max {s['max']:.3g}   "
                f"threshold {s['threshold']:.3g}"
            )
            (tmp / feature_file(t.feature)).write_bytes(
                render.png_bytes(make_card(t, images, heat, head.strip(), c["card_size"]), compress_level=4)
            )
    write_json(d / TASKS, {"info": info, "tasks": tasks_to_json(tasks)})
    return d


def explain_and_score(features_dir, shard_paths, out_dir, cfg: dict | None = None, annotator=None) -> dict:
    """Explain every sampled feature, judge held-out positives and negatives, write the tables."""
    c = resolve_config(cfg)
    d, out = Path(features_dir), Path(out_dir)
    saved = json.loads((d / TASKS).read_text())
    tasks, info = tasks_from_json(saved["tasks"]), saved["info"]  # tasks_from_json re-checks disjointness
    cache_dir = c["cache_dir"] or out / "cache"
    explainer = make_backend(c["explainer"], annotator=annotator, cache_dir=cache_dir)
    judge = make_backend(c["judge"], annotator=annotator, cache_dir=cache_dir) if c["judge"] else explainer
    codes = CodeTable.load(d / CODES)
    images = ShardImages(shard_paths)
    size = c["image_size"]

    token_judge = hasattr(judge, "token_agreement")  # the shapes world's grounded judge
    want = [(t.feature, p) for t in tasks for p in t.explain]
    if judge.judge_heatmap or token_judge:
        want += [(t.feature, p) for t in tasks for p in (*t.positives, *t.negatives)]
    heat = heatmaps(codes, want)

    def ex(f, p, with_heat, vmax):
        return Example(p, images[p], heat[(f, p)] if with_heat else None, vmax, size)

    expl = explainer.explain_many(
        [
            (
                t.feature,
                [ex(t.feature, p, True, t.vmax) for p in t.explain],
                [ex(t.feature, p, False, t.vmax) for p in t.explain_neg],
            )
            for t in tasks
        ]
    )
    items, rows = [], []
    for t, e in zip(tasks, expl):
        if not e.ok:
            continue
        for p, label, kind in [
            *((p, 1, "positive") for p in t.positives),
            *((p, 0, k) for p, k in zip(t.negatives, t.negative_kinds)),
        ]:
            items.append((e, ex(t.feature, p, judge.judge_heatmap, t.vmax)))
            rows.append({"feature": t.feature, "prompt_id": p, "label": label, "kind": kind})
    judged = judge.judge_many(items)

    jt = pd.DataFrame(
        [
            {
                **r,
                "score": j.score if j.ok else np.nan,
                "ok": j.ok,
                "error": j.error,
                **j.usage.row(),
            }
            for r, j in zip(rows, judged)
        ],
        columns=[
            "feature",
            "prompt_id",
            "label",
            "kind",
            "score",
            "ok",
            "error",
            *Usage.COLUMNS,
        ],
    )
    et = pd.DataFrame(
        [
            {
                "feature": e.feature,
                "explanation": e.text,
                "concepts": list(e.concepts),
                "ok": e.ok,
                "error": e.error,
                "explain_prompt_ids": t.explain,
                **e.usage.row(),
            }
            for t, e in zip(tasks, expl)
        ],
        columns=[
            "feature",
            "explanation",
            "concepts",
            "ok",
            "error",
            "explain_prompt_ids",
            *Usage.COLUMNS,
        ],
    )
    scores = feature_scores(jt, et, c["failure_policy"])
    if token_judge:
        thresholds = pd.read_parquet(d / STATS).set_index("feature")["threshold"]
        tokens = token_scores(judge, tasks, expl, heat, thresholds, images, size, c["failure_policy"])
        scores = scores.merge(tokens, on="feature", how="left")
    summary = summarise(scores, c["n_boot"], c["ci"], c["seed"])
    usage = pd.concat([et[["cost", "requests", "cached"]], jt[["cost", "requests", "cached"]]])
    summary.update(
        {
            "requests": int(usage["requests"].sum()),
            "cached": int(usage["cached"].sum()),
            "cost_spent": float(usage.loc[usage["cached"] == 0, "cost"].sum()),
            "judge_failures": int((~jt["ok"]).sum()),
            "explainer": _public(c["explainer"]),
            "judge": _public(c["judge"] or c["explainer"]),
            "failure_policy": c["failure_policy"],
            "dictionary_kind": codes.meta.get("dictionary_kind"),
            "site": codes.meta.get("site"),
            "l0": float(codes.sparse().l0.double().mean()) if len(codes) else None,  # diffdict.budget
            **{
                k: info.get(k)  # None in a tasks.json written before the key existed
                for k in (
                    "n_features_total",
                    "n_eligible",
                    "n_ineligible_rare",
                    "n_ineligible_dense",
                    "n_alive",
                    "n_sampled",
                    "n_explain_images",
                    "n_heldout_images",
                )
            },
        }
    )
    write_parquet(out / "explanations.parquet", et)
    write_parquet(out / "judgements.parquet", jt)
    write_parquet(out / "scores.parquet", scores)
    write_json(out / "summary.json", summary)
    log.info(
        "interp: balanced accuracy %.3f [%.3f, %.3f] over %d features; %d failures; %d requests, %d cached",
        summary["balanced_accuracy"],
        summary["balanced_accuracy_lo"],
        summary["balanced_accuracy_hi"],
        summary["n_scored"],
        summary["failures"],
        summary["requests"],
        summary["cached"],
    )
    return summary


def token_scores(judge, tasks, explanations, heat, thresholds, images, size, policy: str) -> pd.DataFrame:
    """The token-level judge: for each explained feature, its active tokens (at or above its
    ``threshold``) on the held-out images (positives and negatives) against the explained
    concepts' token masks -> ``token_precision``, ``token_recall``, ``token_f1``. A feature
    whose explanation failed scores 0 under ``failure_policy: wrong`` and NaN under ``exclude``."""
    rows = []
    for t, e in zip(tasks, explanations):
        held = [*t.positives, *t.negatives]
        counts = None
        if e.ok:
            active = np.stack([heat[(t.feature, p)] >= thresholds[t.feature] for p in held])
            counts = judge.token_agreement(e, [Example(p, images[p], None, t.vmax, size) for p in held], active)
        if counts is None:
            fill = 0.0 if policy == "wrong" and not e.ok else np.nan
            rows.append({"feature": t.feature, "token_precision": fill, "token_recall": fill, "token_f1": fill})
            continue
        hit, n_active, n_mask = counts
        prec = hit / n_active if n_active else 0.0
        rec = hit / n_mask if n_mask else np.nan
        f1 = 2 * hit / (n_active + n_mask) if n_mask else np.nan  # = 2PR / (P + R), 0 when nothing hits
        rows.append({"feature": t.feature, "token_precision": prec, "token_recall": rec, "token_f1": f1})
    return pd.DataFrame(rows, columns=["feature", "token_precision", "token_recall", "token_f1"])


def run_interp(dictionary, store, shard_paths, out_dir, cfg: dict | None = None, annotator=None) -> dict:
    """All stages into one directory: codes, stats, cards, explanations, scores, summary."""
    feature_stats(dictionary, store, out_dir, cfg)
    make_cards(out_dir, shard_paths, cfg)
    return explain_and_score(out_dir, shard_paths, out_dir, cfg, annotator=annotator)


def _public(backend_cfg: dict | None) -> dict:
    """Backend settings safe to record (the key's variable *name* is fine; values never are)."""
    return {k: v for k, v in (backend_cfg or {}).items() if "key" not in k or k == "api_key_env"}
