"""The steering stages as the CLI calls them: read the previous stages' files, pick features
and prompts, write the grid and the steering metrics.

    steer_stage           dictionary + explanations/scores + prompts + site store
                          -> grid.png, rows/feature_XXXXX.png, images.safetensors, table.parquet
    steering_metrics_stage images.safetensors + table.parquet + explanations
                          -> metrics.parquet (annotator on the shapes world, judge on real models)
    grade_steering        the same, with the workflow's grader: the annotator, else the judge
                          of the steering explainer's settings
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_table
from ..settings import defaults, resolve, setting
from ..sites import Site
from .grid import SteeringRun, empty_run, steering_grid
from .metrics import Judge, annotator_metrics, judge_metrics
from .scale import site_token_norm
from .select import select_features


@dataclass
class SteeringSettings:
    """The `steering` config section."""

    split: str = setting("test", "prompts split to steer")
    explainer: str | None = setting(None, "whose explanations pick the features; null: the first configured")
    features: int | list[int] = setting(
        4,
        "a number: the top-n explained features by `score`; a list: these",
        minimum=1,
        items={"type": "integer", "minimum": 0},
    )
    score: str = setting("balanced_accuracy", "the interp score that ranks features")
    match: str | None = setting(None, "regex on explanations: steer only matching features (e.g. ^color=)")
    strengths: list[float] = setting(
        [-0.8, 0.0, 0.4, 0.8, 1.6], "x the site's mean token norm (paper: 0.8)", minItems=1, uniqueItems=True
    )
    prompts: int = setting(4, "prompts per feature, sampled (seeded) from the split", minimum=1)
    steps: list[int] | None = setting(None, "denoising steps to steer; null: all (the paper)")
    streams: list[str] | None = setting(None, "img and/or txt tokens; null: the site's own stream")
    border: int = setting(0, "image-token border left unsteered (paper: 4 at 256 px)", minimum=0)
    batch_size: int = setting(8, "images per generation batch", minimum=1)
    seed: int = setting(0, "prompt sample seed")
    norm_tokens: int = setting(65536, "tokens read from the store to measure the mean token norm", minimum=1)


DEFAULTS = defaults(SteeringSettings)
log = logging.getLogger("diffdict.steering")
GRID, ROWS, IMAGES, TABLE, METRICS = "grid.png", "rows", "images.safetensors", "table.parquet", "metrics.parquet"


def resolve_config(cfg: Mapping | None) -> dict:
    return resolve(SteeringSettings, cfg, "steering")


def select_prompts(prompts: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` prompts sampled without replacement (seeded), in prompt_id order."""
    missing = [c for c in ("prompt_id", "prompt", "seed") if c not in prompts.columns]
    if missing:
        raise ValueError(f"prompts table lacks {missing}; see docs/architecture.md (Prompts)")
    rows = prompts.sample(n=min(n, len(prompts)), random_state=seed) if n < len(prompts) else prompts
    return rows.sort_values("prompt_id")


def steer_stage(
    pipe,
    site: Site,
    dictionary,
    explanations: pd.DataFrame,
    scores: pd.DataFrame | None,
    prompts: pd.DataFrame,
    store: str | os.PathLike,
    model_cfg: Mapping,
    out_dir: str | os.PathLike,
    cfg: Mapping | None = None,
    mean_norm: float | None = None,
) -> pd.DataFrame:
    """Steer the best-explained features of one dictionary; write the files listed above.

    `mean_norm` (the strength unit) defaults to the mean token norm of `store`."""
    c = resolve_config(cfg)
    if isinstance(c["features"], list):
        chosen = select_features(explanations, 0, features=c["features"])
    else:
        chosen = select_features(explanations, int(c["features"]), scores, c["score"], match=c["match"])
        if not chosen and c["match"]:
            # a dictionary with no matching feature still gets its grid (of its best features)
            log.warning("no explanation matches %r; steering the best-explained features instead", c["match"])
            chosen = select_features(explanations, int(c["features"]), scores, c["score"])
    out = Path(out_dir)
    if not chosen:
        # A valid outcome (a small interp split, a text-stream site whose features fire on every
        # prompt): the files say so, and the metrics, tables and figures after them report it.
        reason = (
            f"no feature to steer: no explained feature of {site.name} has a '{c['score']}' score "
            "(the interp stage found no eligible feature; its features log says why)"
        )
        log.warning(reason)
        from .render import render_feature_rows, render_message

        run = empty_run()
        render_message(reason, out / GRID, title=f"{site.name}: steering")
        render_feature_rows(run.images, run.table, out / ROWS)
        run.save(out / IMAGES, out / TABLE)
        return run.table
    rows = select_prompts(prompts, int(c["prompts"]), int(c["seed"]))
    return steering_grid(
        pipe,
        site,
        dictionary,
        list(chosen),
        c["strengths"],
        rows["prompt"].tolist(),
        rows["seed"].tolist(),
        model_cfg,
        out / GRID,
        rows_dir=out / ROWS,
        images_path=out / IMAGES,
        table_path=out / TABLE,
        mean_norm=mean_norm if mean_norm is not None else site_token_norm(store, int(c["norm_tokens"])),
        steps=c["steps"],
        streams=c["streams"],
        border=int(c["border"]),
        prompt_ids=rows["prompt_id"].tolist(),
        explanations=chosen,
        batch_size=int(c["batch_size"]),
        progress=True,
    )


def steering_metrics_stage(
    run_dir: str | os.PathLike,
    explanations: pd.DataFrame,
    out: str | os.PathLike,
    annotate: Callable[[np.ndarray], list] | None = None,
    judge: Judge | None = None,
    vocabulary: list[str] | None = None,
) -> pd.DataFrame:
    """Grade a steering run: with the world's annotator when `annotate` is given (shapes world:
    pass ``Annotator.load(...).annotate`` and ``vocabulary=annotator.concepts``), else with
    the pairwise `judge` (real models). Exactly one grader must be given."""
    if (annotate is None) == (judge is None):
        raise ValueError("give exactly one grader: annotate= (shapes world) or judge= (real models)")
    run = SteeringRun.load(Path(run_dir) / IMAGES, Path(run_dir) / TABLE)
    text = dict(zip(explanations["feature"].astype(int), explanations["explanation"].fillna("").astype(str)))
    if annotate is not None:
        concepts = (
            {
                int(f): list(cs)
                for f, cs in zip(explanations["feature"], explanations["concepts"])
                if cs is not None and len(cs)
            }
            if "concepts" in explanations.columns
            else None
        )
        table = annotator_metrics(run, annotate, text, vocabulary=vocabulary, concepts=concepts)
    else:
        table = judge_metrics(run, judge, text)
    write_table(out, table)
    return table


def grade_steering(
    run_dir: str | os.PathLike,
    explanations: pd.DataFrame,
    out: str | os.PathLike,
    *,
    annotator=None,
    explainer: Mapping | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """`steering_metrics_stage` graded as the workflow does: by the shapes world's `annotator`
    when there is one, else by the judge of the steering `explainer`'s settings (its ``judge:``,
    or the explainer itself), whose answers are cached in `cache_dir`."""
    if annotator is not None:  # its concept list is its world's (the texture world's names textures)
        return steering_metrics_stage(
            run_dir, explanations, out, annotate=annotator.annotate, vocabulary=list(annotator.concepts)
        )
    if not explainer:
        raise ValueError("grade_steering: give the shapes world's annotator or an explainer's settings")
    from ..interp.backends import make_backend, split_judge
    from .metrics import judge_from_backend

    explainer, judge = split_judge(explainer)
    backend = make_backend(judge or explainer, cache_dir=cache_dir)
    return steering_metrics_stage(run_dir, explanations, out, judge=judge_from_backend(backend))
