"""SAELens' on-disk format (``SAE.save_model`` / ``SAE.load_from_disk``, sae-lens 6.x):

    cfg.json                  {"architecture": "topk", "d_in", "d_sae", "k", "dtype",
                               "apply_b_dec_to_input", "normalize_activations",
                               "rescale_acts_by_decoder_norm", "metadata": {"hook_name", ...}}
    sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]

SAELens' TopK SAE computes ``z = relu(topk((x - b_dec) @ W_enc + b_enc))``, ``x_hat = z @ W_dec +
b_dec``: diffdict's `TopKSAE` with W_enc transposed. A BatchTopK SAE is written as SAELens writes
its own, a JumpReLU (``architecture: jumprelu``) whose ``threshold`` is the learnt one for every
latent; SAELens keeps every latent above it, diffdict the largest ``max_k`` of them per token (the
same codes unless more than ``max_k`` latents of a token pass the threshold). Exports use
``normalize_activations: none`` because diffdict folds its normalisation into the weights at save
time. Imports fold the two options that are linear (``apply_b_dec_to_input: false``,
``rescale_acts_by_decoder_norm``) and refuse the run-time normalisations, whose state is not in the
folder. A JumpReLU SAE (any, with its per-latent thresholds) is read as a threshold SAE whose codes
keep a token's largest ``max_k`` latents above threshold: diffdict's codes have a width and a
JumpReLU's do not, so the width is the caller's ``k`` (`JUMPRELU_CAP`), or the ``max_k`` that
diffdict wrote into the folder's metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from ..dictionaries.sae import TopKSAE

FILES = ("cfg.json", "sae_weights.safetensors")
ARCHITECTURES = ("topk", "jumprelu")
JUMPRELU_CAP = (
    "a JumpReLU SAE keeps every latent above its threshold, while diffdict's codes have a width: give k, the "
    "most latents one token may keep (a token with more above threshold keeps its largest k; a few times the "
    "SAE's L0 truncates almost nothing, d_sae nothing)"
)


class CodeWidthError(ValueError):
    """A JumpReLU SAE asked for without a usable width for its codes (`JUMPRELU_CAP`)."""


_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64"}
# What the folder's cfg.json must say for its numbers to be the weights' own (see `load`).
FOLDABLE_NORMALISATION = ("none",)
SAVED_BY = "diffdict"
# The config layout written here; an older (or missing) version makes SAELens rewrite the config
# as a pre-6.0 one, which drops the metadata.
FORMAT_VERSION = "6.0.0"


def save(sae: TopKSAE, out: str | os.PathLike, info: dict) -> Path:
    meta = {k: v for k, v in info.items() if v is not None}
    cfg = {
        **({"architecture": "jumprelu"} if sae.batch_topk else {"architecture": "topk", "k": sae.k}),
        "d_in": sae.d_model,
        "d_sae": sae.n_features,
        "dtype": _DTYPES[sae.W_dec.dtype],
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "rescale_acts_by_decoder_norm": False,
        "metadata": {
            "hook_name": meta.pop("hook_name", None),
            "model_name": meta.pop("model_name", None),
            "sae_lens_version": FORMAT_VERSION,
            "saved_by": SAVED_BY,
            **meta,
        },
    }
    tensors = {
        "W_enc": sae.W_enc.detach().T,
        "b_enc": sae.b_enc.detach(),
        "W_dec": sae.W_dec.detach(),
        "b_dec": sae.b_dec.detach(),
    }
    if sae.batch_topk:
        tensors["threshold"] = sae.threshold.detach().to(sae.b_enc.dtype)
    with atomic_path(out, is_dir=True) as tmp:
        save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp / FILES[1]))
        (tmp / FILES[0]).write_text(json.dumps(cfg, indent=2) + "\n")
    return Path(out)


def _check(cfg: dict, path: Path) -> None:
    arch = cfg.get("architecture", "standard")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"{path}: SAELens architecture '{arch}' is not supported; diffdict reads "
            f"{', '.join(ARCHITECTURES)} (sparse top-k codes); found cfg.json keys {sorted(cfg)[:20]}"
        )
    norm = cfg.get("normalize_activations", "none")
    if norm not in FOLDABLE_NORMALISATION:
        raise ValueError(
            f"{path}: normalize_activations '{norm}' keeps state outside the folder (a scaling factor or "
            "per-token statistics), so the weights alone do not define the SAE; fold it first (SAELens: "
            "fold_activation_norm_scaling_factor / fold_activation_whitening) and save with 'none'"
        )
    if cfg.get("reshape_activations", "none") != "none":
        raise ValueError(f"{path}: reshape_activations '{cfg['reshape_activations']}' has no meaning at a Flux site")


def _diffdict_hparams(cfg: dict) -> dict:
    """The settings diffdict wrote into a folder it exported (`formats.export_dictionary`); {} otherwise."""
    return cfg.get("metadata", {}).get("diffdict_hparams", {})


def shape(cfg: dict, path: Path, k: int | None = None) -> tuple[int, int, int]:
    """(d_in, d_sae, the codes' width): a TopK SAE's k; a JumpReLU's cap (`k`, else diffdict's max_k)."""
    _check(cfg, path)
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    if cfg["architecture"] == "topk":
        return d_in, d_sae, int(cfg["k"])
    cap = k or _diffdict_hparams(cfg).get("max_k")
    if not cap:
        raise CodeWidthError(f"{path}: {JUMPRELU_CAP}")
    if not 0 < int(cap) <= d_sae:
        raise CodeWidthError(f"{path}: k={cap}, the most latents one token may keep, must be in 1..d_sae={d_sae}")
    return d_in, d_sae, int(cap)


def load(path: Path, k: int | None = None) -> TopKSAE:
    """A TopK SAE (a k override is the caller's to apply) or a JumpReLU SAE capped at `k` latents per token."""
    cfg = json.loads((path / FILES[0]).read_text())
    d_in, d_sae, width = shape(cfg, path, k)
    jumprelu = cfg["architecture"] == "jumprelu"
    w = load_file(str(path / FILES[1]))
    W_enc, b_enc, W_dec, b_dec = (w[n].float() for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    if W_enc.shape != (d_in, d_sae) or W_dec.shape != (d_sae, d_in):
        raise ValueError(
            f"{path}: W_enc {tuple(W_enc.shape)} / W_dec {tuple(W_dec.shape)} do not match "
            f"cfg.json's d_in {d_in}, d_sae {d_sae}"
        )
    W_enc = W_enc.T
    if not cfg.get("apply_b_dec_to_input", True):  # x @ W_enc + b_enc = (x - b_dec) @ W_enc + (b_enc + b_dec @ W_enc)
        b_enc = b_enc + W_enc @ b_dec
    if not jumprelu and cfg.get("rescale_acts_by_decoder_norm", False):  # a TopK option; SAELens' JumpReLU has none
        # pre-activations x ||W_dec_i|| and decoding z_i / ||W_dec_i||: fold the norms into the encoder
        n = W_dec.norm(dim=1)
        W_enc, b_enc, W_dec = W_enc * n[:, None], b_enc * n, W_dec / n.clamp_min(1e-12)[:, None]
    state = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    if not jumprelu:
        sae = TopKSAE(d_in, d_sae, width)
    else:
        state["threshold"] = w["threshold"].float()
        if state["threshold"].shape != (d_sae,):
            raise ValueError(
                f"{path}: threshold {tuple(state['threshold'].shape)} is not one per latent (d_sae {d_sae})"
            )
        saved_k = _diffdict_hparams(cfg).get("k")  # the mean it was trained to
        sae = TopKSAE(d_in, d_sae, min(saved_k or width, width), batch_topk=True, max_k=width)
    sae.load_state_dict(state)
    return sae
