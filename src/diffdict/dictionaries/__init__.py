"""Dictionaries share one interface (`Dictionary`): encode to sparse codes, decode, feature
directions for steering, save/load. Kinds register themselves in `base.REGISTRY`."""

from .base import REGISTRY, Dictionary, SparseCodes, load_dictionary

__all__ = ["REGISTRY", "Dictionary", "SparseCodes", "load_dictionary"]
