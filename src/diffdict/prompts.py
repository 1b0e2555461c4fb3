"""Prompt tables: one parquet per split with disjoint prompt ids, noise seeds and shards.

Sources: `world` (the shapes grammar, with concept labels) or `file` (txt: one prompt a
line; csv / parquet: a named column). Splits take disjoint, consecutive ranges in the order
train, interp, test, so no prompt is shared between training and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .settings import OPTIONAL, REQUIRED, defaults, setting

SPLIT_ORDER = ("train", "interp", "test")


def _split_range(splits: dict, split: str) -> tuple[int, int]:
    if split not in splits:
        raise ValueError(f"unknown split '{split}'; valid: {', '.join(splits)}")
    start = 0
    for name in SPLIT_ORDER:
        if name == split:
            return start, start + int(splits[name])
        start += int(splits[name])
    raise AssertionError(split)


def read_prompt_file(path: str | Path, column: str = "prompt") -> list[str]:
    path = Path(path)
    if path.suffix == ".txt":
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return [ln for ln in lines if ln]
    if path.suffix == ".csv":
        df = pd.read_csv(path)
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise ValueError(f"{path}: unsupported prompt file type '{path.suffix}'; valid: .txt, .csv, .parquet")
    if column not in df:
        raise ValueError(f"{path}: no column '{column}'; columns: {', '.join(map(str, df.columns))}")
    return df[column].dropna().astype(str).tolist()


@dataclass(frozen=True)
class PromptSettings:
    """The `prompts` config section."""

    source: Literal["world", "file"] = setting(
        REQUIRED, "world: sampled from the shapes grammar, with concept labels (toy); file: a prompt file"
    )
    splits: dict = setting(
        REQUIRED,
        "split -> number of prompts (train: dictionary training; interp: features; test: held-out metrics)",
        required=list(SPLIT_ORDER),
        properties={s: {"type": "integer", "minimum": 1} for s in SPLIT_ORDER},
        additionalProperties=False,
    )
    path: str = setting(OPTIONAL, "source: file: txt (one prompt a line), csv or parquet")
    column: str = setting("prompt", "the prompt column of a csv or parquet file")
    seed: int = setting(0, "seeds the grammar (world) and the noise seeds")
    textures: bool = setting(
        False, "source: world: objects also carry a texture (the texture world; a toy trained with world.textures)"
    )
    shard_size: int = setting(64, "prompts per generation job (on SLURM: one GPU job per shard)", minimum=1)


def prompt_table(cfg: dict, split: str) -> pd.DataFrame:
    """The prompt table of `split` (columns: prompt_id, prompt, seed, shard, [concepts, scene]);
    `cfg`: the `prompts` section (`PromptSettings`)."""
    cfg = {**defaults(PromptSettings), **cfg}
    start, stop = _split_range(cfg["splits"], split)
    n = stop - start
    seed = int(cfg["seed"])
    if cfg["source"] == "world":
        from .world import prompts_table

        # A different grammar seed per split, so splits are independent draws, not one stream cut.
        df = prompts_table(
            n, seed=seed * 1000 + SPLIT_ORDER.index(split), start_id=start, textures=bool(cfg["textures"])
        )
    elif cfg["source"] == "file":
        prompts = read_prompt_file(cfg["path"], cfg["column"])
        if len(prompts) < stop:
            raise ValueError(
                f"{cfg['path']}: {len(prompts)} prompts, but the splits need {sum(cfg['splits'].values())}"
            )
        df = pd.DataFrame({"prompt_id": np.arange(start, stop, dtype=np.int64), "prompt": prompts[start:stop]})
        rng = np.random.default_rng([seed, SPLIT_ORDER.index(split)])
        df["seed"] = rng.integers(0, 2**31 - 1, size=n, dtype=np.int64)
    else:
        raise ValueError(f"unknown prompt source '{cfg['source']}'; valid: world, file")
    df["shard"] = (np.arange(n) // int(cfg["shard_size"])).astype(np.int64)
    return df.reset_index(drop=True)
