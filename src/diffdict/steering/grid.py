"""Steering grids: generate with a feature's direction added at its site.

For each feature f and strength s, every prompt is generated with ``s * mean_norm * u_f`` added
to the site's output tokens (``u_f = Dictionary.directions[f]``, unit-normalised), on the chosen
denoising steps and streams. The addition itself is the model adapter's ``steer`` context
manager; this module decides *what* to add, seeds the noise, and lays the results out.

Seeding contract: every image gets its own CPU generator seeded with its prompt's seed, and
steered and unsteered images are generated with the same batch composition, so the strength-0
column is pixel-identical to plain generation (`model.generate_images`) of the same prompts and seeds.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_path
from ..model.generate import generate_images
from ..sites import STREAMS, Site

SteerFn = Callable[..., AbstractContextManager]

TABLE_COLUMNS = (
    "feature",
    "strength",
    "alpha",
    "prompt_id",
    "prompt",
    "seed",
    "image",
    "baseline_image",
    "explanation",
    "steps",
    "streams",
    "border",
)


@dataclass
class SteeringRun:
    """Generated images and one metadata row per (feature, strength, prompt) cell.

    ``table.image`` indexes ``images``; ``table.baseline_image`` is the unsteered image of the
    same prompt and seed (strength-0 cells point at it too). Columns: `TABLE_COLUMNS`.
    """

    images: np.ndarray  # [N, H, W, 3] uint8
    table: pd.DataFrame

    def save(self, images_path: str | os.PathLike, table_path: str | os.PathLike) -> None:
        from safetensors.numpy import save_file

        with atomic_path(images_path) as tmp:
            save_file({"images": np.ascontiguousarray(self.images)}, str(tmp))
        with atomic_path(table_path) as tmp:
            self.table.to_parquet(tmp, index=False)

    @classmethod
    def load(cls, images_path: str | os.PathLike, table_path: str | os.PathLike) -> SteeringRun:
        from safetensors.numpy import load_file

        return cls(load_file(str(images_path))["images"], pd.read_parquet(table_path))


def _default_steer() -> SteerFn:
    try:
        from ..model import steer
    except ImportError as e:  # the adapter is a separate seam; say which one is missing
        raise ImportError(
            "steering needs diffdict.model.steer (the model adapter); pass steer_fn= to use another"
        ) from e
    return steer


def unit_directions(dictionary, features: Sequence[int]) -> torch.Tensor:
    """Rows of ``dictionary.directions`` for `features`, re-normalised to unit length [F, d]."""
    dirs = dictionary.directions
    n = dirs.shape[0]
    bad = [f for f in features if not 0 <= int(f) < n]
    if bad:
        raise ValueError(f"features {bad} out of range: the dictionary has {n} features (0..{n - 1})")
    d = dirs[torch.as_tensor([int(f) for f in features], dtype=torch.long)].detach().float().cpu()
    norms = d.norm(dim=-1, keepdim=True)
    if (norms == 0).any():
        zero = [int(f) for f, z in zip(features, (norms.squeeze(-1) == 0).tolist()) if z]
        raise ValueError(f"features {zero} have a zero direction; they cannot steer")
    return d / norms


def run_steering(
    pipe,
    site: Site,
    dictionary,
    features: Sequence[int],
    strengths: Sequence[float],
    prompts: Sequence[str],
    seeds: Sequence[int],
    model_cfg: Mapping,
    *,
    mean_norm: float,
    steps: Sequence[int] | None = None,
    streams: Sequence[str] | None = None,
    border: int = 0,
    prompt_ids: Sequence[int] | None = None,
    explanations: Mapping[int, str] | None = None,
    batch_size: int = 8,
    steer_fn: SteerFn | None = None,
    progress: bool = False,
) -> SteeringRun:
    """Generate every (feature, strength, prompt) cell; see the module docstring.

    `strengths` are multiples of `mean_norm` (the site's mean token norm, `site_token_norm`);
    `steps` are denoising step indices (None: all); `streams` any of ``("img", "txt")`` (None:
    the site's own stream); `border` leaves that many token rows/columns at the image-token
    grid's edge unsteered (image tokens only).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    if not prompts or not features or not strengths:
        raise ValueError("steering needs at least one prompt, one feature and one strength")
    if not np.isfinite(mean_norm) or mean_norm <= 0:
        raise ValueError(f"mean_norm must be a positive number, got {mean_norm}")
    streams = [site.stream] if streams is None else list(streams)
    unknown = [s for s in streams if s not in STREAMS]
    if unknown or not streams:
        raise ValueError(f"streams {list(streams)}: each must be one of {list(STREAMS)}")
    n_steps = int(model_cfg["num_inference_steps"])
    steps = list(range(n_steps)) if steps is None else [int(s) for s in steps]
    if any(not 0 <= s < n_steps for s in steps):
        raise ValueError(f"steps {steps} outside the schedule of {n_steps} steps (0..{n_steps - 1})")
    steer_fn = steer_fn or _default_steer()
    prompt_ids = list(range(len(prompts))) if prompt_ids is None else [int(p) for p in prompt_ids]
    explanations = explanations or {}
    directions = unit_directions(dictionary, features)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)

    baseline = generate_images(pipe, prompts, seeds, model_cfg, batch_size)
    chunks, n_images = [baseline], len(baseline)
    base_idx = np.arange(len(prompts))
    rows = []
    cells = [(fi, float(s)) for fi in range(len(features)) for s in strengths]
    if progress:
        from tqdm import tqdm

        cells = tqdm(cells, desc=f"steering {site.name}", unit="cell")
    for fi, s in cells:
        if s == 0.0:
            idx = base_idx  # unsteered: identical by construction, no need to regenerate
        else:
            with contextlib.ExitStack() as stack:
                for stream in streams:
                    stack.enter_context(
                        steer_fn(
                            pipe.transformer,
                            site,
                            directions[fi],
                            s * mean_norm,
                            steps,
                            stream=stream,
                            border=border if stream == "img" else 0,
                        )
                    )
                imgs = generate_images(pipe, prompts, seeds, model_cfg, batch_size)
            chunks.append(imgs)
            idx = np.arange(n_images, n_images + len(imgs))
            n_images += len(imgs)
        f = int(features[fi])
        for p in range(len(prompts)):
            rows.append(
                {
                    "feature": f,
                    "strength": s,
                    "alpha": s * mean_norm,
                    "prompt_id": prompt_ids[p],
                    "prompt": prompts[p],
                    "seed": int(seeds[p]),
                    "image": int(idx[p]),
                    "baseline_image": int(base_idx[p]),
                    "explanation": explanations.get(f, ""),
                    "steps": json.dumps(steps),
                    "streams": ",".join(streams),
                    "border": int(border),
                }
            )
    return SteeringRun(np.concatenate(chunks), pd.DataFrame(rows, columns=list(TABLE_COLUMNS)))


def empty_run() -> SteeringRun:
    """A steering run with no cell (nothing to steer): its files still exist, so every stage after
    it runs and reports the absence instead of failing."""
    return SteeringRun(np.zeros((0, 0, 0, 3), np.uint8), pd.DataFrame({c: [] for c in TABLE_COLUMNS}))


def steering_grid(
    pipe,
    site: Site,
    dictionary,
    features: Sequence[int],
    strengths: Sequence[float],
    prompts: Sequence[str],
    seeds: Sequence[int],
    model_cfg: Mapping,
    out_png: str | os.PathLike,
    *,
    rows_dir: str | os.PathLike | None = None,
    images_path: str | os.PathLike | None = None,
    table_path: str | os.PathLike | None = None,
    **run_kwargs,
) -> pd.DataFrame:
    """Run `run_steering` and write the labelled grid PNG (rows: feature x prompt, columns:
    strength). Optionally also one PNG per feature (`rows_dir/feature_{f:06d}.png`, for the
    feature browser) and the raw images + table (for `steering.metrics`). Returns the table."""
    from .render import render_feature_rows, render_grid

    if (images_path is None) != (table_path is None):
        raise ValueError("images_path and table_path go together (steering metrics need both)")
    run = run_steering(pipe, site, dictionary, features, strengths, prompts, seeds, model_cfg, **run_kwargs)
    render_grid(run.images, run.table, out_png, title=f"{site.name}: steering (strength x mean token norm)")
    if rows_dir is not None:
        render_feature_rows(run.images, run.table, rows_dir)
    if images_path is not None:
        run.save(images_path, table_path)
    return run.table
