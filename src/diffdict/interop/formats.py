"""Dispatch over the interchange formats (see the package docstring)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import ConfigError
from ..dictionaries.base import Dictionary, load_dictionary, read_metadata
from ..dictionaries.sae import TopKSAE
from . import saelens, sparsify

FORMATS = ("diffdict", "saelens", "sparsify")
PEER_FORMATS = FORMATS[1:]  # the peers' folder formats (`_MODULES`)
# Which formats can hold which diffdict kinds (a peer format holds a TopK SAE, nothing else).
EXPORTABLE = {"topk_sae": PEER_FORMATS}
_MODULES = {"saelens": saelens, "sparsify": sparsify}


def peer_formats(settings: dict) -> tuple[str, ...]:
    """The peer formats that hold a TopK SAE trained with these settings (a `config.dictionaries`
    entry): a BatchTopK SAE's codes come from its threshold, which sparsify's format cannot hold."""
    return tuple(f for f in PEER_FORMATS if not (settings.get("batch_topk") and f == "sparsify"))


# Both are inputs the user can fix: the CLI reports them like config errors (exit 2, no traceback).
class ExportError(ConfigError):
    """A dictionary that the requested format cannot express."""


class PretrainedFormatError(ConfigError):
    """A file or folder that is not what its declared format says."""


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise PretrainedFormatError(f"unknown format '{fmt}'; valid formats: {', '.join(FORMATS)}")


def export_dictionary(path: str | os.PathLike, fmt: str, out: str | os.PathLike, model_name: str | None = None) -> Path:
    """Write the diffdict dictionary at `path` as a `fmt` folder at `out` (atomically).

    The weights are in model space (normalisation folded at save time), so the peer model takes
    raw activations and returns the same codes and reconstructions. Which site, stream, steps and
    model the SAE was trained on go into the folder's ``cfg.json``."""
    _check_format(fmt)
    if fmt == "diffdict":
        raise ExportError("format 'diffdict' is the dictionary file itself; export to saelens or sparsify")
    meta = read_metadata(path)
    kind = meta["kind"]
    if fmt not in EXPORTABLE.get(kind, ()):
        can = [k for k, fs in EXPORTABLE.items() if fmt in fs]
        raise ExportError(
            f"{path}: a '{kind}' dictionary cannot be written as {fmt} (it holds {', '.join(can)} only); "
            f"'{kind}' stays in diffdict's own format, which `pretrained` with format: diffdict reads back"
        )
    sae = load_dictionary(path)
    assert isinstance(sae, TopKSAE)
    if fmt not in peer_formats(meta["hparams"]):
        raise ExportError(
            f"{path}: a BatchTopK SAE's codes come from its threshold, which sparsify's formats cannot hold "
            "(they keep k latents per token); export it to saelens (a JumpReLU with that threshold)"
        )
    extra = meta.get("extra", {})
    info = {"diffdict_kind": kind, "diffdict_hparams": meta["hparams"], **provenance(extra, model_name)}
    return _MODULES[fmt].save(sae, out, info)


def provenance(extra: dict, model_name: str | None) -> dict:
    """Where the SAE reads: site, the Flux module it hooks, stream, place and denoising steps."""
    from ..sites import Site

    site_cfg = extra.get("site_config")
    if not site_cfg:
        return {"model_name": model_name}
    site = Site.from_config(extra.get("site", "?"), site_cfg)
    return {
        "model_name": model_name,
        "hook_name": site.hook_name,
        "diffdict_site": site.name,
        "stream": site.stream,
        "place": site.place,
        "steps": list(site.steps),
    }


def pretrained_files(path: str | os.PathLike, fmt: str) -> list[Path]:
    """The files a pretrained dictionary is read from (workflow inputs: a changed file reruns)."""
    _check_format(fmt)
    p = Path(path)
    return [p] if fmt == "diffdict" else [p / f for f in _MODULES[fmt].FILES]


def _require_files(path: Path, fmt: str) -> None:
    if fmt == "diffdict":
        if not path.is_file():
            raise PretrainedFormatError(
                f"{path}: not a file; format 'diffdict' is one .safetensors file "
                "written by diffdict (results/.../dictionary.safetensors)"
            )
        return
    if not path.is_dir():
        raise PretrainedFormatError(
            f"{path}: not a folder; format '{fmt}' is a folder holding {' + '.join(_MODULES[fmt].FILES)}"
        )
    missing = [f for f in _MODULES[fmt].FILES if not (path / f).is_file()]
    if missing:
        found = sorted(q.name for q in path.iterdir())[:12]
        sub = sorted(q.name for q in path.iterdir() if (q / "cfg.json").is_file())[:12]
        hint = f"; its subfolders {sub} hold cfg.json: point path at one of them (one per hook point)" if sub else ""
        raise PretrainedFormatError(
            f"{path}: a {fmt} folder needs {' + '.join(_MODULES[fmt].FILES)}; missing {missing}, found {found}{hint}"
        )


def _check_k_override(kind: str, path: Path, k: int | None, batch_topk: bool = False) -> None:
    if k is not None and kind != "topk_sae":
        raise PretrainedFormatError(f"{path}: k can be overridden for TopK SAEs only, not '{kind}'")
    if k is not None and batch_topk:
        raise PretrainedFormatError(f"{path}: k cannot be overridden for a BatchTopK SAE: its threshold sets its codes")


def _unreadable(path: Path, fmt: str, e: Exception) -> PretrainedFormatError:
    if isinstance(e, saelens.CodeWidthError):  # readable, but a setting is missing: say only that
        return PretrainedFormatError(str(e))
    return PretrainedFormatError(f"{path}: not a readable {fmt} SAE ({type(e).__name__}: {e})")


def pretrained_shape(path: str | os.PathLike, fmt: str, k: int | None = None) -> tuple[int, int, int]:
    """(d_in, n_features, k) read from the configuration only (no weights): for config checks.
    `k`: a requested override, refused (as `load_pretrained` would) for a kind without one."""
    _check_format(fmt)
    p = Path(path)
    _require_files(p, fmt)
    if fmt == "diffdict":
        meta = read_metadata(p)
        _check_k_override(meta["kind"], p, k, meta["hparams"].get("batch_topk", False))
        hp = meta["hparams"]
        return int(hp["d_model"]), int(hp["n_features"]), int(hp.get("k", 0))
    try:
        cfg = json.loads((p / "cfg.json").read_text())
        if fmt == "saelens":  # a JumpReLU's k is its codes' width (saelens.JUMPRELU_CAP)
            return saelens.shape(cfg, p, k)
        return _MODULES[fmt].shape(cfg, p)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise _unreadable(p, fmt, e) from e


def load_pretrained(path: str | os.PathLike, fmt: str, k: int | None = None) -> Dictionary:
    """Any format -> a diffdict Dictionary in model space. `k` overrides a TopK SAE's k, and is a
    SAELens JumpReLU SAE's codes' width (the most latents one token keeps)."""
    _check_format(fmt)
    p = Path(path)
    _require_files(p, fmt)
    if fmt == "diffdict":
        out = load_dictionary(p)
    else:
        try:
            out = saelens.load(p, k) if fmt == "saelens" else _MODULES[fmt].load(p)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            if isinstance(e, PretrainedFormatError):
                raise
            raise _unreadable(p, fmt, e) from e
        if getattr(out, "batch_topk", False):  # a JumpReLU: `k` was its codes' width (saelens.load)
            return out
    _check_k_override(out.kind, p, k, getattr(out, "batch_topk", False))
    if k is not None:
        out.k = int(k)
    return out
