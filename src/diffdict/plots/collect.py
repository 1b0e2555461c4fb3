"""Gather per-(site, dictionary) result files into tidy tables for the figures.

Paths follow the results layout (docs/architecture.md):
``{results}/{model}/{stage}/{site}/{dict}[/{level}...]/{file}``; model, site and dict (and any
deeper level, such as the interp explainer) are read from the path, so the files themselves
need not repeat them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

RECONSTRUCTION_COLUMNS = ("model", "site", "dict", "kind", "fvu", "l0", "dead_fraction")


def path_keys(path: str | os.PathLike, stage: str, levels: Sequence[str] = ()) -> dict[str, str]:
    """``{model, site, dict, *levels}`` parsed from a result path under `stage`."""
    parts = Path(path).parts
    try:
        i = len(parts) - 1 - parts[::-1].index(stage)
    except ValueError:
        raise ValueError(
            f"{path}: expected .../{{model}}/{stage}/{{site}}/{{dict}}/... (no '{stage}' folder)"
        ) from None
    inner = parts[i + 1 : -1]
    if i < 1 or len(inner) < 2 + len(levels):
        raise ValueError(
            f"{path}: expected .../{{model}}/{stage}/{{site}}/{{dict}}/"
            + "".join(f"{{{lv}}}/" for lv in levels)
            + "<file>"
        )
    keys = {"model": parts[i - 1], "site": inner[0], "dict": inner[1]}
    keys.update(zip(levels, inner[2:]))
    return keys


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".json":
        obj = json.loads(path.read_text())
        return pd.json_normalize(obj if isinstance(obj, list) else [obj])  # nested keys: "judge.backend"
    raise ValueError(f"{path}: cannot read '{suffix}' (parquet, csv or json)")


def collect_tables(
    paths: Iterable[str | os.PathLike],
    stage: str,
    levels: Sequence[str] = (),
    kinds: Mapping[str, str] | None = None,
    replicas: Mapping[str, Sequence] | None = None,
) -> pd.DataFrame:
    """Concatenate result files, adding ``model, site, dict, kind`` (+ `levels`) from each path.

    ``kind`` is taken from `kinds` (``{dict name: kind}``, the config's ``dictionaries.*.kind``:
    a `pretrained` SAE stays `pretrained` though its file says ``topk_sae``), else from the file
    when it has one, else the dictionary name. With `replicas`
    (``{instance: (dictionary, r)}`` for the replicates r > 0, see
    `diffdict.config.dictionary_instances`), a replicate's rows are filed under its dictionary's
    name and a ``replicate`` column (0 for the dictionary itself) tells them apart."""
    frames = []
    for p in paths:
        p = Path(p)
        keys = path_keys(p, stage, levels)  # a misplaced file fails before it is read
        df = _read(p)
        for k, v in keys.items():
            df[k] = v  # the path is the truth about where a result belongs
        name, replicate = (replicas or {}).get(keys["dict"], (keys["dict"], 0))
        if replicas is not None:
            df["dict"], df["replicate"] = name, replicate
        if name in (kinds or {}) or "kind" not in df.columns:  # a replicate has its dictionary's kind
            df["kind"] = (kinds or {}).get(name, name)
        frames.append(df)
    if not frames:
        raise ValueError(f"no {stage} result files given")
    out = pd.concat(frames, ignore_index=True)
    first = ["model", "site", "dict", "kind", *levels, *(["replicate"] if replicas is not None else [])]
    return out[first + [c for c in out.columns if c not in first]]


def collect_metrics(paths: Iterable[str | os.PathLike], kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read ``metrics/{site}/{dict}/reconstruction.json`` files into the tidy reconstruction
    table: `RECONSTRUCTION_COLUMNS` first, then every other key of the files (mse, n_tokens...)."""
    df = collect_tables(paths, "metrics", kinds=kinds)
    missing = [c for c in ("fvu", "l0", "dead_fraction") if c not in df.columns]
    if missing:
        raise ValueError(f"reconstruction files lack {missing}; see docs/architecture.md (Metrics)")
    return df[list(RECONSTRUCTION_COLUMNS) + [c for c in df.columns if c not in RECONSTRUCTION_COLUMNS]]


def melt_prefix(table: pd.DataFrame, prefix: str, value_name: str = "value") -> pd.DataFrame:
    """Wide metric columns sharing `prefix` (``effect_recovered_denoiser``, ...) -> one row per
    metric: a ``metric`` column (the names less the prefix) and a `value_name` column."""
    cols = [c for c in table.columns if c.startswith(prefix)]
    if not cols:
        raise ValueError(f"no column starts with {prefix!r}; columns: {list(table.columns)}")
    keep = [c for c in table.columns if c not in cols]
    out = table.melt(id_vars=keep, value_vars=cols, var_name="metric", value_name=value_name)
    out["metric"] = out["metric"].str.removeprefix(prefix)
    return out
