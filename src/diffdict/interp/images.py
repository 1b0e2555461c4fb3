"""Read decoded images from generation shards by prompt id (only the rows asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open


class ShardImages:
    """``images[prompt_id] -> uint8 [H, W, 3]`` over a set of generation shards.

    Opens each shard's ``prompt_id`` tensor once; images are read lazily, one row at a time,
    so a card stage never loads whole shards."""

    def __init__(self, shard_paths):
        self._where: dict[int, tuple[Path, int]] = {}
        for path in map(Path, shard_paths):
            with safe_open(str(path), framework="np") as f:
                if "images" not in f.keys():
                    raise ValueError(f"{path}: generation shard has no 'images' tensor (has {sorted(f.keys())})")
                for row, pid in enumerate(f.get_tensor("prompt_id").tolist()):
                    self._where[int(pid)] = (path, row)
        self._cache: dict[int, np.ndarray] = {}

    def __contains__(self, pid) -> bool:
        return int(pid) in self._where

    def __getitem__(self, pid) -> np.ndarray:
        pid = int(pid)
        if pid not in self._cache:
            if pid not in self._where:
                raise KeyError(f"prompt_id {pid} is in no generation shard given")
            path, row = self._where[pid]
            with safe_open(str(path), framework="np") as f:
                self._cache[pid] = np.asarray(f.get_slice("images")[row : row + 1])[0]
        return self._cache[pid]
