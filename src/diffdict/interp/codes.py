"""Sparse codes of the interpretation split, stored as (indices, values) per token.

``codes.safetensors`` holds ``indices`` int32 [N, k], ``values`` float32/float16 [N, k],
``prompt_id`` int64 [N], ``step`` int16 [N], ``token`` int32 [N] (row order of the activation
store), with JSON metadata ``{"n_features", "grid", "k", ...}`` under ``"diffdict"``.
Codes are never densified: a real interp split has ~10^7 tokens x 65,536 features.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path

CODE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class CodeTable:
    """Sparse codes plus per-row metadata. ``grid`` is the image-token grid [gh, gw];
    ``token`` is the row-major position in that grid."""

    indices: torch.Tensor  # [N, k] int32
    values: torch.Tensor  # [N, k] float
    prompt_id: torch.Tensor  # [N] int64
    step: torch.Tensor  # [N] int16
    token: torch.Tensor  # [N] int32
    n_features: int
    grid: tuple[int, int]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.indices.shape[0]
        if self.values.shape != self.indices.shape:
            raise ValueError(f"codes: indices {tuple(self.indices.shape)} != values {tuple(self.values.shape)}")
        for name in ("prompt_id", "step", "token"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"codes: {name} has shape {tuple(getattr(self, name).shape)}, expected ({n},)")
        gh, gw = self.grid
        if n and int(self.token.max()) >= gh * gw:
            raise ValueError(f"codes: token position {int(self.token.max())} outside the {gh}x{gw} grid")

    def __len__(self) -> int:
        return self.indices.shape[0]

    def sparse(self):
        """The codes as `SparseCodes` (int64 indices, float32 values), without the row metadata."""
        from ..dictionaries.base import SparseCodes

        return SparseCodes(self.indices.long(), self.values.float())

    def save(self, path) -> None:
        meta = {**self.meta, "n_features": self.n_features, "grid": list(self.grid), "k": int(self.indices.shape[1])}
        tensors = {
            "indices": self.indices.to(torch.int32),
            "values": self.values,
            "prompt_id": self.prompt_id.long(),
            "step": self.step.to(torch.int16),
            "token": self.token.to(torch.int32),
        }
        with atomic_path(path) as tmp:
            save_file(
                {k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"diffdict": json.dumps(meta)}
            )

    @classmethod
    def load(cls, path) -> CodeTable:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["diffdict"])
            t = {k: f.get_tensor(k) for k in ("indices", "values", "prompt_id", "step", "token")}
        return cls(**t, n_features=int(meta.pop("n_features")), grid=tuple(meta.pop("grid")), meta=meta)


def encode_batches(
    dictionary,
    batches: Iterable,
    grid,
    *,
    dtype: str = "float32",
    meta: dict | None = None,
    device: str | torch.device = "cpu",
) -> CodeTable:
    """Encode ``(x [B, d], {"prompt_id", "step", "token"})`` batches with a `Dictionary`.

    Only the k (index, value) pairs per token are kept, so memory is O(N k)."""
    if dtype not in CODE_DTYPES:
        raise ValueError(f"interp.codes_dtype '{dtype}' is not one of {sorted(CODE_DTYPES)}")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("indices", "values", "prompt_id", "step", "token")}
    dictionary = dictionary.to(device).eval()
    with torch.no_grad():
        for x, m in batches:
            codes = dictionary.encode(torch.as_tensor(x, dtype=torch.float32, device=device))
            parts["indices"].append(codes.indices.to(torch.int32).cpu())
            parts["values"].append(codes.values.to(CODE_DTYPES[dtype]).cpu())
            for key in ("prompt_id", "step", "token"):
                parts[key].append(torch.as_tensor(np.asarray(m[key])).long())
    if not parts["indices"]:
        raise ValueError("encode_batches: no activations (empty store?)")
    cat = {k: torch.cat(v) for k, v in parts.items()}
    return CodeTable(
        indices=cat["indices"],
        values=cat["values"],
        prompt_id=cat["prompt_id"],
        step=cat["step"].to(torch.int16),
        token=cat["token"].to(torch.int32),
        n_features=int(dictionary.n_features),
        grid=(int(grid[0]), int(grid[1])),
        meta=dict(meta or {}),
    )


def store_batches(store, batch_size: int):
    """Batches of an `ActivationStore` in row order, as `encode_batches` wants them."""
    return store.batches(batch_size, shuffle=False, with_meta=True)
