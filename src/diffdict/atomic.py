"""Atomic outputs: write to a temporary sibling, then rename.

A job killed at any point leaves either the old state or the complete new file, never a
half-written file that Snakemake (or a human) would take as complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`.

    Works for files and (with ``is_dir=True``) directories such as zarr stores. On any
    exception the temporary is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name  # keep the suffix so libraries that sniff it behave
    try:
        if is_dir:
            target.mkdir()
        yield target
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = True) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=_json_default) + "\n")


def write_parquet(path: str | os.PathLike, df) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_table(path: str | os.PathLike, df, **options) -> None:
    """A tidy table, atomically: ``.parquet`` or ``.csv`` by suffix; ``options`` go to the writer
    (e.g. ``float_format`` for a csv)."""
    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    if suffix not in ("parquet", "csv"):
        raise ValueError(f"{path}: write .parquet or .csv")
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, **options) if suffix == "parquet" else df.to_csv(tmp, index=False, **options)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
