"""One rule for where tensors go: ``auto`` (or None) is CUDA when there is one, else the CPU; an
explicit device (``cpu``, ``cuda``, ``cuda:1``) is kept as given, and asking for CUDA on a machine
without it fails with the setting's name instead of deep inside torch."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from . import cpu_math


def resolve_device(device: str | torch.device | None = "auto", key: str = "model.device") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{key} is '{device}' but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def describe(device: str | torch.device = "cpu") -> str:
    """The device as records name it: a GPU's model, or the CPU's model and the vector extensions
    that change float kernels, hence timings and rounding (the same code trains other weights on
    another CPU: benchmarks/README.md), and whether the math libraries were held to their AVX2
    paths (`cpu_math`)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type != "cpu":
        return str(dev)
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    paths = f"; {cpu_math.PINNED_NOTE}" if cpu_math.pinned() else ""  # model.cpu_math
    return f"{model} ({', '.join(isa) or 'no AVX2'}{paths})"
