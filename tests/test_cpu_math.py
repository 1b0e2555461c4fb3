"""`model.cpu_math`: the environment that holds every CPU math library to its AVX2 path, and each
library, asked in a fresh process, saying that it took that path."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from diffdict import cpu_math

x86_avx2 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or not cpu_math.has_avx2(),
    reason="the portable pins are x86-64 AVX2 code paths",
)

# Run in a fresh process: each library reads its variable when it first computes.
PROBE = r"""
import ctypes, json, os, sys
import numpy, torch
import scipy.linalg  # loads SciPy's OpenBLAS beside NumPy's
from threadpoolctl import threadpool_info
torch.nn.functional.conv2d(torch.ones(1, 64, 32, 32), torch.ones(64, 64, 3, 3), padding=1)  # a oneDNN kernel
torch.ones(64, 64) @ torch.ones(64, 64)  # MKL
try:
    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    mkl_branch = lib.mkl_serv_cbwr_get(ctypes.c_int(1))  # MKL_CBWR_BRANCH
except (OSError, AttributeError):
    mkl_branch = None
try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
from diffdict.devices import describe
print("PROBE" + json.dumps({
    "aten": torch.backends.cpu.get_cpu_capability(),
    "mkl_branch": mkl_branch,
    "openblas": [i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"],
    "numpy": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
    "device": describe(),
}))
"""
MKL_CBWR_COMPATIBLE = 3  # mkl.h


def probe(env: dict[str, str]) -> tuple[dict, str]:
    clean = {k: v for k, v in os.environ.items() if k not in cpu_math.cpu_math_env("portable")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env, "ONEDNN_VERBOSE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("PROBE"))
    onednn = " ".join(x for x in out.splitlines() if x.startswith("onednn_verbose") and "isa:" in x)
    return json.loads(line[len("PROBE") :]), onednn


def test_native_sets_nothing_and_a_wrong_mode_names_the_choices():
    assert cpu_math.cpu_math_env("native") == {}
    environ: dict[str, str] = {}
    assert cpu_math.apply("native", environ) == {} and environ == {}
    with pytest.raises(ValueError, match="native, portable"):
        cpu_math.cpu_math_env("fast")


@x86_avx2
def test_apply_keeps_what_the_user_pinned():
    environ = {"MKL_CBWR": "AVX2"}
    used = cpu_math.apply("portable", environ)
    assert used["MKL_CBWR"] == "AVX2" and environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert not cpu_math.pinned(environ)  # MKL is not on the portable branch
    assert cpu_math.pinned(cpu_math.portable_env())


@x86_avx2
def test_every_library_takes_its_avx2_path():
    got, onednn = probe(cpu_math.portable_env())
    assert got["aten"] == "AVX2"
    if got["mkl_branch"] is not None:  # MKL's own answer, where the build exports it
        assert got["mkl_branch"] == MKL_CBWR_COMPATIBLE
    assert got["openblas"] and set(got["openblas"]) == {"Haswell"}
    assert not [f for f in got["numpy"] if f.startswith("AVX512") or f == "X86_V4"], got["numpy"]
    assert "isa:Intel AVX2" in onednn, onednn
    assert cpu_math.PINNED_NOTE in got["device"]


@x86_avx2
def test_native_leaves_the_libraries_alone():
    got, _ = probe({})
    assert got["mkl_branch"] in (None, 1)  # MKL_CBWR_BRANCH_OFF: no branch forced
    assert "portable" not in got["device"]
