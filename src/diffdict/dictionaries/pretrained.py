"""The `pretrained` kind: an SAE trained elsewhere (another diffdict run, SAELens, sparsify),
read instead of trained, so every later stage evaluates it beside the project's own.

    dictionaries:
      theirs: {kind: pretrained, format: sparsify, path: /path/to/hookpoint_folder}

Formats and what each may hold: `diffdict.interop`. The checks that need only the folder's
config (format, files, d_model against the site) run at config-check time as well."""

from __future__ import annotations

import torch

from .base import Dictionary

PRETRAINED_DEFAULTS = {
    "path": None,  # file (diffdict) or folder (saelens, sparsify)
    "format": "diffdict",
    "k": None,  # override a TopK SAE's k; None: the k it was saved with
}


def build_pretrained(hp: dict, d_model: int, site_name: str, device: torch.device) -> Dictionary:
    from ..interop import load_pretrained

    if not hp.get("path"):
        raise ValueError(
            f"site '{site_name}': kind 'pretrained' needs path: (a file or folder of format "
            f"'{hp.get('format', 'diffdict')}')"
        )
    out = load_pretrained(hp["path"], hp.get("format", "diffdict"), hp.get("k"))
    if out.d_model != d_model:
        raise ValueError(
            f"site '{site_name}': the pretrained dictionary at {hp['path']} reads d_model {out.d_model}, "
            f"but the site's activations have d_model {d_model}"
        )
    out.build_info = {"source": str(hp["path"]), "format": hp.get("format", "diffdict"), "source_kind": out.kind}
    return out.to(device)
