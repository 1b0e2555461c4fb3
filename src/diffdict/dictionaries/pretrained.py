"""The `pretrained` kind: an SAE trained elsewhere (another diffdict run, SAELens, sparsify),
read instead of trained, so every later stage evaluates it beside the project's own.

    dictionaries:
      theirs: {kind: pretrained, format: sparsify, path: /path/to/hookpoint_folder}

Formats and what each may hold: `diffdict.interop`. The checks that need only the folder's
config (format, files, d_model against the site) run at config-check time as well."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import setting
from .base import Dictionary
from .kinds import FitInputs, Kind, register


@dataclass
class PretrainedConfig:
    path: str | None = setting(None, "a dictionary.safetensors (diffdict) or a peer's folder holding cfg.json")
    format: Literal["diffdict", "saelens", "sparsify"] = setting("diffdict", "what `path` holds")
    k: int | None = setting(
        None,
        "override a TopK SAE's k; null: the k it was saved with. A SAELens JumpReLU SAE: the most latents one token "
        "keeps (its codes' width; needed unless diffdict wrote the folder)",
    )


def build_pretrained(cfg: PretrainedConfig, inputs: FitInputs) -> Dictionary:
    from ..interop import load_pretrained

    if not cfg.path:
        raise ValueError(
            f"site '{inputs.site}': kind 'pretrained' needs path: (a file or folder of format '{cfg.format}')"
        )
    out = load_pretrained(cfg.path, cfg.format, cfg.k)
    if out.d_model != inputs.d_model:
        raise ValueError(
            f"site '{inputs.site}': the pretrained dictionary at {cfg.path} reads d_model "
            f"{out.d_model}, but the site's activations have d_model {inputs.d_model}"
        )
    out.build_info = {"source": str(cfg.path), "format": cfg.format, "source_kind": out.kind}
    return out.to(inputs.device)


KIND = register(
    Kind(
        "pretrained",
        PretrainedConfig,
        build_pretrained,
        order=4,
        places=("resid", "mlp"),
        trained=False,
        doc="an SAE trained elsewhere, read from diffdict, SAELens or sparsify files",
    )
)
