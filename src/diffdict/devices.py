"""One rule for where tensors go: ``auto`` (or None) is CUDA when there is one, else the CPU; an
explicit device (``cpu``, ``cuda``, ``cuda:1``) is kept as given, and asking for CUDA on a machine
without it fails with the setting's name instead of deep inside torch."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto", key: str = "model.device") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{key} is '{device}' but CUDA is not available; use 'auto' or 'cpu'")
    return dev
