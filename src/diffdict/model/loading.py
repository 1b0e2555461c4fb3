"""Load a Flux pipeline offline (local diffusers folder or HF cache) in fp32, bf16 or NF4.

Also reads model geometry from ``transformer/config.json`` alone, so the config validator can
check block indices before anything heavy is loaded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ..devices import resolve_device
from .settings import MODEL_KINDS, PRECISIONS, model_settings

log = logging.getLogger(__name__)

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
FETCH_HINT = (
    "Fetch it (on a machine with network) with e.g. "
    "`huggingface-cli download {repo} --local-dir {path}` "
    "(or without --local-dir into the HF cache, then set model.path to the repo id)."
)
EXAMPLE_REPO = "black-forest-labs/FLUX.1-schnell"


def _hint(path, repo: str = EXAMPLE_REPO) -> str:
    return FETCH_HINT.format(repo=repo, path=path)


class ModelFolderError(FileNotFoundError):
    """A model folder that is missing or incomplete."""


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A local folder as is; a HF repo id (``org/name``) resolved in the HF cache, offline."""
    p = Path(path).expanduser()
    if p.exists():
        return p
    s = str(path)
    if s.count("/") == 1 and not s.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(s, local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError) as e:
            raise ModelFolderError(
                f"model '{s}' is neither a local folder nor in the Hugging Face cache "
                f"({os.environ.get('HF_HUB_CACHE') or os.environ.get('HF_HOME') or '~/.cache/huggingface'}). "
                + _hint(f"models/{s.split('/')[-1]}", repo=s)
            ) from e
    raise ModelFolderError(f"model folder '{p}' does not exist. " + _hint(p))


def _has_weights(folder: Path) -> list[str]:
    """Missing weight files of a component folder ([] when complete)."""
    for idx in folder.glob("*.index.json"):  # sharded checkpoint: every listed shard must exist
        try:
            shards = set(json.loads(idx.read_text())["weight_map"].values())
        except (ValueError, KeyError) as e:
            return [f"{idx} (unreadable index: {e})"]
        return [str(folder / s) for s in sorted(shards) if not (folder / s).exists()]
    if any(f.name.endswith(WEIGHT_SUFFIXES) for f in folder.iterdir()):
        return []
    return [f"{folder}/*.safetensors (no weights)"]


def check_model_folder(path: str | os.PathLike, components: tuple[str, ...] | None = None) -> list[str]:
    """Missing files of a diffusers pipeline folder: model_index.json, then for each listed
    component its config and weights (models), scheduler config or tokenizer files."""
    root = Path(path)
    index = root / "model_index.json"
    if not index.exists():
        return [str(index)]
    try:
        spec = json.loads(index.read_text())
    except ValueError as e:
        return [f"{index} (unreadable: {e})"]
    missing = []
    for name, entry in spec.items():
        if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
            continue
        if components is not None and name not in components:
            continue
        folder = root / name
        if not folder.is_dir():
            missing.append(f"{folder}/")
        elif name.startswith("scheduler"):
            if not (folder / "scheduler_config.json").exists():
                missing.append(str(folder / "scheduler_config.json"))
        elif name.startswith("tokenizer"):
            if not any(folder.iterdir()):
                missing.append(f"{folder}/ (empty)")
        elif name.startswith(("feature_extractor", "image_encoder")):
            continue
        else:
            if not (folder / "config.json").exists():
                missing.append(str(folder / "config.json"))
            missing += _has_weights(folder)
    return missing


def require_model_folder(path, components=None) -> Path:
    root = resolve_model_path(path)
    missing = check_model_folder(root, components)
    if missing:
        raise ModelFolderError(f"model folder '{root}' is incomplete; missing: {', '.join(missing)}. " + _hint(root))
    return root


def transformer_config_info(model_path: str | os.PathLike) -> dict:
    """Model geometry from ``transformer/config.json`` (and ``vae/config.json`` if present) only."""
    root = resolve_model_path(model_path)
    cfg_file = root / "transformer" / "config.json"
    if not cfg_file.exists():
        raise ModelFolderError(f"{cfg_file} is missing. " + _hint(root))
    info = info_from_config(json.loads(cfg_file.read_text()))
    vae_file = root / "vae" / "config.json"
    if vae_file.exists():
        info["vae_scale_factor"] = 2 ** (len(json.loads(vae_file.read_text())["block_out_channels"]) - 1)
    return info


def info_from_config(cfg: dict) -> dict:
    d = int(cfg.get("num_attention_heads", 24)) * int(cfg.get("attention_head_dim", 128))
    return {
        "n_double": int(cfg.get("num_layers", 19)),
        "n_single": int(cfg.get("num_single_layers", 38)),
        "d_model": d,
        "mlp_hidden": 4 * d,  # FeedForward mult=4 and single-block mlp_ratio=4 in diffusers' Flux
        "n_heads": int(cfg.get("num_attention_heads", 24)),
        "head_dim": int(cfg.get("attention_head_dim", 128)),
        "in_channels": int(cfg.get("in_channels", 64)),
        "patch_size": int(cfg.get("patch_size", 1)),
        "joint_attention_dim": int(cfg.get("joint_attention_dim", 4096)),
        "pooled_projection_dim": int(cfg.get("pooled_projection_dim", 768)),
        "guidance_embeds": bool(cfg.get("guidance_embeds", False)),
        # one image token = a 2x2 patch of VAE latents = (2 * vae_scale_factor)^2 pixels
        "latent_patch": 2,
    }


def model_info(transformer) -> dict:
    """`info_from_config` for a loaded transformer (or pipeline), with widths read from modules."""
    transformer = getattr(transformer, "transformer", transformer)
    info = info_from_config(dict(transformer.config))
    if len(transformer.transformer_blocks):
        info["mlp_hidden"] = int(transformer.transformer_blocks[0].ff.net[2].in_features)
    return info


def image_grid(height: int, width: int, vae_scale_factor: int) -> tuple[int, int]:
    """Image-token grid (rows, cols) of a height x width image."""
    f = 2 * vae_scale_factor
    return height // f, width // f


def _dtype(name: str, key: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"{key} '{name}' is not one of {sorted(DTYPES)}")
    return DTYPES[name]


def load_pipeline(model_cfg: dict):
    """Load the configured pipeline offline. Keys: `model.settings.ModelSettings` (kind, path,
    precision, device, cpu_offload, nf4_compute_dtype); ``progress: true`` shows progress bars."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_cfg = model_settings(model_cfg)
    precision = model_cfg["precision"]
    if precision not in PRECISIONS:
        raise ValueError(f"model.precision '{precision}' is not one of {list(PRECISIONS)}")
    kind = model_cfg.get("kind", "flux")  # the workflow's config always names it
    if kind not in MODEL_KINDS:
        raise ValueError(f"model.kind '{kind}' is not one of {list(MODEL_KINDS)}")
    root = require_model_folder(model_cfg["path"])
    device = resolve_device(model_cfg["device"])
    offload = bool(model_cfg["cpu_offload"])
    if offload and device.type != "cuda":
        log.warning("cpu_offload ignored: device is %s", device)
        offload = False

    if precision == "nf4":
        compute = _dtype(model_cfg["nf4_compute_dtype"], "model.nf4_compute_dtype")
        from .nf4 import quantize_nf4

        transformer = FluxTransformer2DModel.from_pretrained(
            root, subfolder="transformer", torch_dtype=compute, local_files_only=True
        )
        # quantise layer by layer straight onto the device: peak GPU memory = the 4-bit weights
        quantize_nf4(transformer, compute, device=device)
        pipe = FluxPipeline.from_pretrained(root, transformer=transformer, torch_dtype=compute, local_files_only=True)
        # the 4-bit transformer (~6.5 GB for FLUX.1) stays on the GPU; offload moves the encoders/VAE only
        pipe._exclude_from_cpu_offload = ["transformer"]
        dtype = compute
    else:
        dtype = DTYPES[precision]
        pipe = FluxPipeline.from_pretrained(root, torch_dtype=dtype, local_files_only=True)
    if offload:
        pipe.enable_model_cpu_offload(gpu_id=device.index or 0)
    else:
        for name, comp in pipe.components.items():
            if isinstance(comp, torch.nn.Module) and not (precision == "nf4" and name == "transformer"):
                comp.to(device)
    pipe.set_progress_bar_config(disable=not model_cfg.get("progress", False))
    for comp in pipe.components.values():
        if isinstance(comp, torch.nn.Module):
            comp.eval().requires_grad_(False)
    return pipe
