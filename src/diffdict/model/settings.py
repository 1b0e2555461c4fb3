"""The `model` config section, typed: which pipeline, how it samples, where and how it runs.

Library functions take the section as a mapping (``model_cfg``) and read it through
`model_settings`, so a key left out means the same thing in the workflow and in a script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..cpu_math import CpuMath
from ..settings import REQUIRED, defaults, setting

# How a model job runs, not what it computes: kept out of rule params (a rerun trigger), so
# raising `runtime` for SLURM or moving to another GPU reruns nothing. They travel as resources.
EXEC_KEYS = ("gpu", "mem_mb", "runtime", "device", "cpu_offload", "cpu_math")

ModelKind = Literal["toy", "flux"]
Precision = Literal["fp32", "bf16", "nf4"]
MODEL_KINDS, PRECISIONS = get_args(ModelKind), get_args(Precision)


@dataclass(frozen=True)
class ModelSettings:
    """The `model` config section."""

    name: str = setting(REQUIRED, "names the results tree", pattern="^[A-Za-z0-9_.-]+$")
    kind: ModelKind = setting(REQUIRED, "toy: the shapes-world pipeline; flux: a diffusers Flux folder")
    path: str = setting(
        REQUIRED, "local diffusers folder, or a Hugging Face repo id found in the local cache (toy: trained if missing)"
    )
    precision: Precision = setting("fp32", "weights of the transformer (nf4: bitsandbytes 4-bit)")
    nf4_compute_dtype: Literal["bf16", "fp16", "fp32"] = setting("bf16", "compute dtype of the nf4 transformer")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N", pattern="^(auto|cpu|cuda(:[0-9]+)?)$")
    height: int = setting(64, "image height in pixels", minimum=16)
    width: int = setting(64, "image width in pixels", minimum=16)
    num_inference_steps: int = setting(4, "sampling steps (sites' `steps` index them)", minimum=1)
    guidance_scale: float = setting(0.0, "guidance embedding value (0: schnell-style, no guidance)", minimum=0)
    max_sequence_length: int = setting(
        16, "T5 tokens per prompt (the toy's; FLUX.1-schnell takes up to 256, -dev 512)", minimum=1, maximum=512
    )
    batch_size: int = setting(16, "images per forward pass", minimum=1)
    cpu_offload: bool = setting(False, "diffusers model CPU offload (GPU only)")
    cpu_math: CpuMath = setting(
        "native",
        "every job's CPU math libraries: native (each its fastest path; rounding depends on the CPU) | "
        "portable (AVX2 paths on any x86-64 CPU: diffdict.cpu_math)",
    )
    gpu: bool = setting(False, "request a GPU for model jobs (resources gpu=1)")
    mem_mb: int = setting(4000, "memory of model jobs", minimum=256)
    runtime: int = setting(60, "runtime of model jobs in minutes", minimum=1)


DEFAULTS = defaults(ModelSettings)


def model_settings(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`model_cfg` with every default it leaves out filled in (extra keys such as ``progress``
    pass through)."""
    return {**DEFAULTS, **model_cfg}
