"""One entry point for the CLI: ``build(kind, hparams, ...) -> Dictionary``, dispatching through
the kind registry (`kinds`). ``HPARAMS[kind]`` lists every hyperparameter a config may set for
that kind, with its default; `validate_hparams` rejects unknown names, listing the valid ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ..devices import describe, resolve_device
from .base import Dictionary
from .kinds import FitInputs, get_kind, kinds
from .train_sae import write_log

# `FitInputs` fields that `build` takes as keyword inputs (the rest are its own arguments)
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
    **inputs,
) -> Dictionary:
    """Train or build a dictionary of ``kind`` on the batches of ``batches_factory(epoch)``.

    ``inputs``: the `FitInputs` fields beyond these arguments (``w_out`` for neurons;
    ``stop_after``, ``callback``, ``progress`` for tools and tests). The result carries
    ``build_info`` (a dict worth saving as metadata)."""
    errors = validate_hparams(kind, hparams)
    if errors:
        raise ValueError("; ".join(errors))
    k = get_kind(kind)
    unknown = sorted(set(inputs) - EXTRA_INPUTS)
    if unknown:
        raise ValueError(f"build: unknown input(s) {unknown}; valid: {sorted(EXTRA_INPUTS)}")
    inputs = FitInputs(
        batches_factory,
        d_model,
        site=site_name,
        device=resolve_device(device),
        checkpoint_dir=checkpoint_dir,
        log_path=log_path,
        **inputs,
    )
    out = k.fit(k.settings(**{n: v for n, v in hparams.items() if n != "kind"}), inputs)
    # the device that built it: on another CPU the same code trains other weights (by rounding)
    built = {"kind": kind, "site": site_name, "device": describe(inputs.device)}
    out.build_info = {**built, **getattr(out, "build_info", {})}
    if log_path is not None and not k.trained:  # nothing is learned; keep outputs uniform
        write_log(log_path, [{"kind": kind, "n_features": out.n_features, "k": out.k}], ("kind", "n_features", "k"))
    return out


def training_batches(store, batch_size: int, seed: int):
    """The training batches of `train_on_store`: epoch e is a fresh shuffle of the store seeded
    ``seed + e``; rows come along for error messages."""

    def batches(epoch: int):
        return store.batches(batch_size, shuffle=True, seed=seed + epoch, with_meta=True)

    return batches


def train_on_store(
    settings: dict,
    store,
    site,
    out: str | Path,
    *,
    model_cfg: dict | None = None,
    checkpoint_dir: str | Path | None = None,
    log_path: str | Path | None = None,
) -> Dictionary:
    """The `train_dictionary` job: fit one configured dictionary (`settings`: its config entry,
    ``kind`` included) on a site's training store (an `ActivationStore` or its path) and save it
    to `out` with the site recorded. Inputs a kind `needs` are loaded here: ``w_out``, the MLP's
    output weights (the neurons' steering directions), from the model of `model_cfg`."""
    from ..model.settings import model_settings
    from ..store import ActivationStore

    kind = get_kind(settings["kind"])
    if not hasattr(store, "batches"):
        store = ActivationStore.open(store)
    hp = {k: v for k, v in settings.items() if k not in ("kind", "sites", "replicates")}
    resolved = {**kind.defaults, **hp}
    needs = {}
    if "w_out" in kind.needs:
        from ..model import load_pipeline, mlp_out_weight

        needs["w_out"] = mlp_out_weight(load_pipeline(model_cfg or {}).transformer, site)

    dictionary = build(
        kind.name,
        hp,
        batches_factory=training_batches(store, resolved.get("batch_size", 4096), resolved.get("seed", 0)),
        d_model=store.d_model,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        log_path=Path(log_path) if log_path else None,
        device=model_settings(model_cfg or {})["device"],
        site_name=site.name,
        **needs,
    )
    dictionary.save(out, extra={"site": site.name, "site_config": site.to_config(), **dictionary.build_info})
    return dictionary
