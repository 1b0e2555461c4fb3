"""The dictionary interface shared by SAEs, ITDA, MLP neurons and random directions.

Codes are sparse: each token keeps ``k`` (index, value) pairs. Everything downstream
(feature statistics, cards, steering) consumes `SparseCodes`, never dense [tokens x width].

On-disk format: one ``.safetensors`` file holding the tensors, with the kind and the
hyperparameters as JSON in the safetensors metadata under ``"diffdict"``. All weights are
stored in *model space*: any input normalisation is folded back at save time, so
``decode(encode(x))`` takes and returns raw activations.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path

REGISTRY: dict[str, type[Dictionary]] = {}


@dataclass
class SparseCodes:
    """Top-k style sparse codes: ``indices`` [N, k] (int64) and ``values`` [N, k] (float).

    Entries with value 0 are padding (a token may use fewer than k features)."""

    indices: torch.Tensor
    values: torch.Tensor

    def __post_init__(self):
        if self.indices.shape != self.values.shape:
            raise ValueError(f"indices {tuple(self.indices.shape)} != values {tuple(self.values.shape)}")

    def __len__(self) -> int:
        return self.indices.shape[0]

    def to_dense(self, n_features: int) -> torch.Tensor:
        out = self.values.new_zeros(len(self), n_features)
        return out.scatter_add_(1, self.indices, self.values)

    @property
    def l0(self) -> torch.Tensor:
        """Number of non-zero codes per token."""
        return (self.values != 0).sum(-1)


class Dictionary(ABC, torch.nn.Module):
    """Base class. Subclasses set ``kind``, implement encode/decode/directions and
    ``hparams()``/``state()``; registration is automatic through ``kind``."""

    kind: ClassVar[str]

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            REGISTRY[cls.kind] = cls

    d_model: int
    n_features: int

    @abstractmethod
    def encode(self, x: torch.Tensor) -> SparseCodes:
        """Raw activations [N, d_model] -> sparse codes."""

    @abstractmethod
    def decode(self, codes: SparseCodes) -> torch.Tensor:
        """Sparse codes -> reconstruction [N, d_model] in model space."""

    @property
    @abstractmethod
    def directions(self) -> torch.Tensor:
        """Unit-norm feature directions [n_features, d_model] in model space (for steering)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def hparams(self) -> dict:
        """JSON-serialisable constructor arguments; ``cls(**hparams)`` rebuilds the module."""
        return {"d_model": self.d_model, "n_features": self.n_features}

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Atomically write the dictionary (tensors + hparams + optional extra metadata)."""
        meta = {"kind": self.kind, "hparams": self.hparams(), "extra": extra or {}}
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"diffdict": json.dumps(meta)})


def read_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["diffdict"])


def load_dictionary(path: str | Path, device: str | torch.device = "cpu") -> Dictionary:
    from .kinds import import_kind_modules

    meta = read_metadata(path)
    kind = meta["kind"]
    import_kind_modules()  # every Dictionary class of this package registers (`__init_subclass__`)
    if kind not in REGISTRY:
        raise ValueError(f"{path}: unknown dictionary kind '{kind}'; known: {sorted(REGISTRY)}")
    module = REGISTRY[kind](**meta["hparams"])
    module.load_state_dict(load_file(str(path), device=str(device)))
    return module.to(device)
