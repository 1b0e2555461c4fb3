"""One entry point for the CLI: ``build(kind, hparams, ...) -> Dictionary``.

``HPARAMS[kind]`` lists every hyperparameter a config may set for that kind, with its default;
`validate_hparams` rejects unknown names with a message listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ..devices import resolve_device
from .base import Dictionary
from .baselines import NEURONS_DEFAULTS, RANDOM_DEFAULTS, NeuronBasis, RandomConfig, build_random
from .itda import ITDA_DEFAULTS, ITDAConfig, build_itda
from .pretrained import PRETRAINED_DEFAULTS, build_pretrained
from .train_sae import SAE_DEFAULTS, SAEConfig, train_sae, write_log

KINDS = ("topk_sae", "itda", "random", "neurons", "pretrained")
HPARAMS: dict[str, dict] = {
    "topk_sae": SAE_DEFAULTS,
    "itda": ITDA_DEFAULTS,
    "random": RANDOM_DEFAULTS,
    "neurons": NEURONS_DEFAULTS,
    "pretrained": PRETRAINED_DEFAULTS,
}


def validate_hparams(kind: str, hparams: dict) -> list[str]:
    """Error messages (empty: valid). The key ``kind`` itself is allowed and ignored."""
    if kind not in KINDS:
        return [f"unknown dictionary kind '{kind}'; valid kinds: {list(KINDS)}"]
    unknown = sorted(set(hparams) - set(HPARAMS[kind]) - {"kind"})
    if unknown:
        return [f"{kind}: unknown hyperparameter(s) {unknown}; valid: {sorted(HPARAMS[kind])}"]
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

    ``extra``: ``w_out`` (neurons: ``ff.net[2].weight``, [d_resid, mlp_hidden]);
    ``stop_after`` / ``callback`` / ``progress`` (SAE training hooks, for tests and tools).
    The result carries ``build_info`` (a dict worth saving as metadata)."""
    errors = validate_hparams(kind, hparams)
    if errors:
        raise ValueError("; ".join(errors))
    extra = dict(extra or {})
    hp = {k: v for k, v in hparams.items() if k != "kind"}
    device = resolve_device(device)
    progress = extra.get("progress", True)
    if kind == "topk_sae":
        out = train_sae(
            batches_factory,
            d_model,
            SAEConfig(**hp),
            checkpoint_dir,
            log_path,
            device,
            site_name,
            stop_after=extra.get("stop_after"),
            callback=extra.get("callback"),
            progress=progress,
        )
    elif kind == "itda":
        out = build_itda(batches_factory, d_model, ITDAConfig(**hp), log_path, device, site_name, progress)
    elif kind == "random":
        out = build_random(batches_factory, d_model, RandomConfig(**hp), site_name, device)
        out.build_info = {}
    elif kind == "pretrained":
        out = build_pretrained(hp, d_model, site_name, device)
    else:
        w_out = extra.get("w_out")
        if w_out is None:
            raise ValueError(f"site '{site_name}': kind 'neurons' needs extra['w_out'] (ff.net[2].weight)")
        w_out = torch.as_tensor(w_out)
        if w_out.ndim != 2 or w_out.shape[1] != d_model:
            raise ValueError(
                f"site '{site_name}': neurons need w_out of shape [d_resid, {d_model}] (the MLP width of "
                f"the site), got {tuple(w_out.shape)}; is the site's place 'mlp'?"
            )
        out = NeuronBasis.from_w_out(w_out, NEURONS_DEFAULTS["k"] if "k" not in hp else hp["k"]).to(device)
        out.build_info = {}
    out.build_info = {"kind": kind, "site": site_name, **getattr(out, "build_info", {})}
    if log_path is not None and kind in ("random", "neurons", "pretrained"):  # nothing is trained; keep outputs uniform
        write_log(log_path, [{"kind": kind, "n_features": out.n_features, "k": out.k}], ("kind", "n_features", "k"))
    return out
