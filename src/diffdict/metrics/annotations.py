"""Token-level concept masks of generated images (shapes world): what the annotator sees at every
image token, written once per split and read by concept recovery and the linear probe.

File (``metrics/annotations/{split}.npz``): ``prompt_id`` [N], ``token_masks`` [N, T, C] bool
(image tokens in the transformer's order), ``concepts`` [C] (names, the annotator's order).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenMasks:
    prompt_id: np.ndarray
    masks: np.ndarray
    concepts: list[str]


def annotate_shards(annotator, shards: Sequence[str | os.PathLike]) -> TokenMasks:
    """The annotator's token masks of every image of generation `shards`, in shard order."""
    from ..model import read_shard

    pids, masks = [], []
    for shard in shards:
        t, meta = read_shard(shard, names=("prompt_id", "images"))
        pids.append(t["prompt_id"].numpy())
        masks.append(annotator.token_masks(t["images"].numpy(), grid=tuple(meta["grid"])))
    return TokenMasks(np.concatenate(pids), np.concatenate(masks), list(annotator.concepts))


def write_annotations(masks: TokenMasks, out: str | os.PathLike) -> None:
    from ..atomic import atomic_path

    with atomic_path(out) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz"
        np.savez_compressed(f, prompt_id=masks.prompt_id, token_masks=masks.masks, concepts=np.array(masks.concepts))


def read_annotations(path: str | os.PathLike) -> TokenMasks:
    with np.load(path) as f:
        return TokenMasks(f["prompt_id"], f["token_masks"], [str(c) for c in f["concepts"]])
