"""Explainer/judge backends behind one interface (`Backend`), built from config by `make_backend`."""

from __future__ import annotations

import importlib

from .base import Backend, Example, Explanation, Judgement, Usage

# name -> "module:Class"; imported lazily so `transformers` is only loaded when used
BACKENDS = {
    "annotation": "annotation:AnnotationBackend",
    "openai": "openai:OpenAIBackend",
    "transformers": "local_vlm:TransformersBackend",
}


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown interp backend '{name}'; valid backends: {sorted(BACKENDS)}")
    mod, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)


def make_backend(cfg: dict, *, annotator=None, cache_dir=None) -> Backend:
    """Build a backend from ``{"backend": name, **options}``. ``annotator`` is passed to the
    annotation backend, ``cache_dir`` to the model backends."""
    cfg = dict(cfg)
    name = cfg.pop("backend", None)
    cls = backend_class(name)
    if name == "annotation":
        cfg["annotator"] = annotator
    else:
        cfg.setdefault("cache_dir", cache_dir)
    try:
        return cls(**cfg)
    except TypeError as e:
        raise ValueError(f"interp backend '{name}': bad options {sorted(cfg)}: {e}") from None


def split_judge(explainer: dict) -> tuple[dict, dict | None]:
    """A configured explainer's backend settings, and its ``judge:`` (None: it judges itself)."""
    explainer = dict(explainer)
    return explainer, explainer.pop("judge", None)


__all__ = [
    "BACKENDS",
    "Backend",
    "Example",
    "Explanation",
    "Judgement",
    "Usage",
    "backend_class",
    "make_backend",
    "split_judge",
]
