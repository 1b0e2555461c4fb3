"""One entry point for the CLI: ``build(kind, hparams, ...) -> Dictionary``, dispatching through
the kind registry (`kinds`). ``HPARAMS[kind]`` lists every hyperparameter a config may set for
that kind, with its default; `validate_hparams` rejects unknown names, listing the valid ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ..devices import resolve_device
from .base import Dictionary
from .kinds import FitInputs, get_kind, kinds
from .train_sae import write_log

# `FitInputs` fields that `build` takes through `extra` (the rest are its own arguments)
EXTRA_INPUTS = {f.name for f in dataclasses.fields(FitInputs)} - {
    "batches",
    "d_model",
    "site",
    "device",
    "checkpoint_dir",
    "log_path",
}


def __getattr__(name: str):
    """``KINDS`` (kind names) and ``HPARAMS`` (kind -> {hyperparameter: default}), read from the
    registry when asked for, so a module importing this one while kinds register sees them all."""
    if name == "KINDS":
        return tuple(kinds())
    if name == "HPARAMS":
        return {n: k.defaults for n, k in kinds().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_hparams(kind: str, hparams: dict) -> list[str]:
    """Error messages (empty: valid). The key ``kind`` itself is allowed and ignored."""
    ks = kinds()
    if kind not in ks:
        return [f"unknown dictionary kind '{kind}'; valid kinds: {list(ks)}"]
    unknown = sorted(set(hparams) - set(ks[kind].defaults) - {"kind"})
    if unknown:
        return [f"{kind}: unknown hyperparameter(s) {unknown}; valid: {sorted(ks[kind].defaults)}"]
    return []


def build(
    kind: str,
    hparams: dict,
    batches_factory: Callable[[int], Iterable],
    d_model: int,
    checkpoint_dir: Path | None = None,
    log_path: Path | None = None,
    device: str | torch.device | None = "cpu",
    site_name: str = "?",
    extra: dict | None = None,
) -> Dictionary:
    """Train or build a dictionary of ``kind`` on the batches of ``batches_factory(epoch)``.

    ``extra``: the `FitInputs` fields beyond these arguments (``w_out`` for neurons; ``stop_after``,
    ``callback``, ``progress`` for tools and tests). The result carries ``build_info`` (a dict
    worth saving as metadata)."""
    errors = validate_hparams(kind, hparams)
    if errors:
        raise ValueError("; ".join(errors))
    k = get_kind(kind)
    extra = dict(extra or {})
    unknown = sorted(set(extra) - EXTRA_INPUTS)
    if unknown:
        raise ValueError(f"build: unknown extra input(s) {unknown}; valid: {sorted(EXTRA_INPUTS)}")
    inputs = FitInputs(
        batches_factory,
        d_model,
        site=site_name,
        device=resolve_device(device),
        checkpoint_dir=checkpoint_dir,
        log_path=log_path,
        **extra,
    )
    out = k.fit(k.settings(**{n: v for n, v in hparams.items() if n != "kind"}), inputs)
    out.build_info = {"kind": kind, "site": site_name, **getattr(out, "build_info", {})}
    if log_path is not None and not k.trained:  # nothing is learned; keep outputs uniform
        write_log(log_path, [{"kind": kind, "n_features": out.n_features, "k": out.k}], ("kind", "n_features", "k"))
    return out
