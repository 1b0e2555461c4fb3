"""Dictionaries share one interface (`Dictionary`): encode to sparse codes, decode, feature
directions for steering, save/load. Kinds register themselves in `base.REGISTRY`.

`build(kind, hparams, batches_factory, d_model, ...)` trains or builds any kind; `KINDS` and
`HPARAMS` (allowed hyperparameters and defaults per kind) serve config validation."""

from .base import REGISTRY, Dictionary, SparseCodes, load_dictionary
from .baselines import NeuronBasis, RandomDirections
from .data import NonFiniteActivationError
from .factory import HPARAMS, KINDS, build, validate_hparams
from .itda import ITDA
from .sae import TopKSAE
from .train_sae import TrainingInterrupted

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
