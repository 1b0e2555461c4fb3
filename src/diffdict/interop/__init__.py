"""Interchange with the peer SAE libraries: export diffdict TopK SAEs in SAELens' and EleutherAI
sparsify's folder formats, and load SAEs those libraries wrote as diffdict dictionaries (the
`pretrained` kind), so the whole evaluation runs on an SAE trained elsewhere.

Neither peer package is imported here: the formats are files (``cfg.json`` + safetensors), and
the round-trip tests check them against the packages' own loaders and savers.

    FORMATS                               ("diffdict", "saelens", "sparsify")
    export_dictionary(path, fmt, out)     a saved diffdict SAE -> a peer folder
    load_pretrained(path, fmt)            a file or folder of any format -> Dictionary
    pretrained_shape(path, fmt)           (d_in, n_features, k) from the config alone
    peer_formats(settings)                the peer formats a configured TopK SAE is exported to
"""

from .formats import (
    FORMATS,
    ExportError,
    PretrainedFormatError,
    export_dictionary,
    load_pretrained,
    peer_formats,
    pretrained_files,
    pretrained_shape,
)

__all__ = [
    "FORMATS",
    "ExportError",
    "PretrainedFormatError",
    "export_dictionary",
    "load_pretrained",
    "peer_formats",
    "pretrained_files",
    "pretrained_shape",
]
