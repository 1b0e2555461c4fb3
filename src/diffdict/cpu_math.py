"""Which code paths the CPU math libraries take, so that a run's bits need not depend on the CPU.

PyTorch (ATen's vectorised kernels, oneDNN, MKL), NumPy and OpenBLAS (under SciPy and
scikit-learn) each pick kernels for the CPU they find: with AVX-512 a sum is blocked, hence
rounded, otherwise than with AVX2. On the toy that alone changes the generated latents (ATen),
the decoded images (oneDNN), the text embeddings and every trained weight (MKL); between two CPUs
that moved the toy's ground-truth checks by up to 0.02, on one CPU between the two modes below by
up to 0.009 (`benchmarks/results/texture_world/cpu_math.md`).

``portable`` caps every library at AVX2 — MKL at its ``COMPATIBLE`` branch, the one it documents
as reproducible on Intel and compatible CPUs alike (its AVX2 branch is Intel-only); OpenBLAS at its
Haswell kernels — so that any x86-64 CPU with AVX2 takes the same paths. ``native`` (the default)
leaves each library its fastest path.

The libraries read these variables when they first compute, so they belong in the environment of
the jobs (the workflow sets them for ``model.cpu_math: portable``), not in a running process. A
variable already set in the environment is kept: the user's pin wins.
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping
from typing import Literal, get_args

CpuMath = Literal["native", "portable"]
CPU_MATHS = get_args(CpuMath)

# library -> (variable, value) that caps it at AVX2; NumPy's is computed (its feature names vary by version)
PINS = {
    "ATen": ("ATEN_CPU_CAPABILITY", "avx2"),
    "oneDNN": ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    "MKL": ("MKL_CBWR", "COMPATIBLE"),
    "OpenBLAS": ("OPENBLAS_CORETYPE", "Haswell"),
}
NUMPY_VAR = "NPY_DISABLE_CPU_FEATURES"
PINNED_NOTE = "portable math: AVX2 paths"  # how `devices.describe` (every dictionary's metadata) says so


def _numpy_cpu() -> tuple[list[str], dict[str, bool]]:
    """NumPy's dispatched features and what it found on this CPU (the names vary by version)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return list(__cpu_dispatch__), dict(__cpu_features__)


def _numpy_above_avx2() -> list[str]:
    """The features NumPy dispatches to on this CPU beyond AVX2 (naming one it does not dispatch
    is an error at import, so the list comes from NumPy itself)."""
    dispatch, found = _numpy_cpu()
    return [f for f in dispatch if (f.startswith("AVX512") or f == "X86_V4") and found.get(f)]


def has_avx2() -> bool:
    return bool(_numpy_cpu()[1].get("AVX2"))


def portable_env() -> dict[str, str]:
    """The variables that put every CPU math library on its AVX2 path."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise RuntimeError(
            f"model.cpu_math: portable pins x86-64 code paths; this machine is {platform.machine()}: use 'native'"
        )
    if not has_avx2():
        raise RuntimeError("model.cpu_math: portable needs a CPU with AVX2, which this one lacks: use 'native'")
    env = dict(PINS.values())
    if NUMPY_VAR in os.environ:  # already pinned: NumPy no longer reports what it disabled
        env[NUMPY_VAR] = os.environ[NUMPY_VAR]
    elif above := _numpy_above_avx2():
        env[NUMPY_VAR] = " ".join(above)
    return env


def cpu_math_env(mode: str) -> dict[str, str]:
    if mode not in CPU_MATHS:
        raise ValueError(f"model.cpu_math is {mode!r}; choose one of {', '.join(CPU_MATHS)}")
    return portable_env() if mode == "portable" else {}


def apply(mode: str, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set ``mode``'s variables in ``environ`` where they are not set yet; return what is in effect."""
    wanted = cpu_math_env(mode)
    for var, value in wanted.items():
        environ.setdefault(var, value)
    return {var: environ[var] for var in wanted}


def pinned(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether this process runs with the portable pins (as records name it)."""
    return all(environ.get(var) == value for var, value in PINS.values())
