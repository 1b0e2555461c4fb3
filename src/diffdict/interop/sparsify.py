"""EleutherAI sparsify's on-disk format (``SparseCoder.save_to_disk`` / ``load_from_disk``, 1.x):

    cfg.json          SparseCoderConfig fields ("activation", "num_latents", "k", ...) + "d_in"
    sae.safetensors   encoder.weight [num_latents, d_in], encoder.bias, W_dec [num_latents, d_in], b_dec

sparsify encodes ``topk(relu(encoder(x - b_dec)))`` and decodes ``z @ W_dec + b_dec``: the same
codes as diffdict's `TopKSAE` (ReLU and top-k commute on the kept values) with the same weight
layout. Transcoders, skip connections and GroupMax activations have no diffdict counterpart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from ..dictionaries.sae import TopKSAE

FILES = ("cfg.json", "sae.safetensors")


def save(sae: TopKSAE, out: str | os.PathLike, info: dict) -> Path:
    # normalize_decoder: false: folded decoder rows are not unit-norm (sparsify only renormalises
    # them while training; loading keeps the weights as they are either way)
    cfg = {
        "activation": "topk",
        "expansion_factor": max(1, sae.n_features // sae.d_model),
        "normalize_decoder": False,
        "num_latents": sae.n_features,
        "k": sae.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": sae.d_model,
        "diffdict": {k: v for k, v in info.items() if v is not None},
    }
    tensors = {
        "encoder.weight": sae.W_enc.detach(),
        "encoder.bias": sae.b_enc.detach(),
        "W_dec": sae.W_dec.detach(),
        "b_dec": sae.b_dec.detach(),
    }
    with atomic_path(out, is_dir=True) as tmp:
        save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp / FILES[1]))
        (tmp / FILES[0]).write_text(json.dumps(cfg, indent=2) + "\n")
    return Path(out)


def shape(cfg: dict, path: Path) -> tuple[int, int, int]:
    for key, ok in (("activation", "topk"), ("transcode", False), ("skip_connection", False)):
        if cfg.get(key, ok) != ok:
            raise ValueError(
                f"{path}: sparsify {key}={cfg[key]!r} is not supported; diffdict reads TopK "
                f"autoencoders ({key}: {ok!r})"
            )
    d_in = int(cfg["d_in"])
    n = int(cfg.get("num_latents") or d_in * int(cfg.get("expansion_factor", 32)))
    return d_in, n, int(cfg.get("k", 32))


def load(path: Path) -> TopKSAE:
    d_in, n, k = shape(json.loads((path / FILES[0]).read_text()), path)
    w = load_file(str(path / FILES[1]))
    state = {"W_enc": w["encoder.weight"], "b_enc": w["encoder.bias"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
    if state["W_enc"].shape != (n, d_in) or state["W_dec"].shape != (n, d_in):
        raise ValueError(
            f"{path}: encoder {tuple(state['W_enc'].shape)} / W_dec {tuple(state['W_dec'].shape)} do not "
            f"match cfg.json's d_in {d_in}, num_latents {n}"
        )
    sae = TopKSAE(d_in, n, k)
    sae.load_state_dict({k_: v.float() for k_, v in state.items()})
    return sae
