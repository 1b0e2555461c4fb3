"""Dictionaries share one interface (`Dictionary`): encode to sparse codes, decode, feature
directions for steering, save/load. Kinds register themselves in `base.REGISTRY`.

`build(kind, hparams, batches_factory, d_model, ...)` trains or builds any kind; `KINDS` and
`HPARAMS` (allowed hyperparameters and defaults per kind) serve config validation."""

from .base import REGISTRY, Dictionary, SparseCodes, load_dictionary
from .baselines import NeuronBasis, RandomDirections
from .data import NonFiniteActivationError
from .factory import build, validate_hparams
from .itda import ITDA
from .sae import TopKSAE
from .train_sae import TrainingInterrupted


def __getattr__(name: str):  # KINDS, HPARAMS: from the kind registry (`factory`), when asked for
    if name in ("KINDS", "HPARAMS"):
        from . import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HPARAMS",
    "ITDA",
    "KINDS",
    "REGISTRY",
    "Dictionary",
    "NeuronBasis",
    "NonFiniteActivationError",
    "RandomDirections",
    "SparseCodes",
    "TopKSAE",
    "TrainingInterrupted",
    "build",
    "load_dictionary",
    "validate_hparams",
]
