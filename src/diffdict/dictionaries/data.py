"""Batches of activations as the dictionaries consume them.

A batch factory is ``batches_factory(epoch) -> Iterable[item]``: the same epoch gives the same
stream (seeded shuffle), so training can be resumed by replaying an epoch up to an offset.
An item is either a float tensor ``x`` [B, d] or a mapping with ``"x"`` and optional per-row
metadata ``"row"`` (row index in the activation store), ``"prompt_id"``, ``"step"``,
``"token"`` (each [B] integer). Tuples ``(x, row)`` and ``(x, {metadata})`` are accepted too. Row indices are what
error messages and ITDA provenance name; without them they fall back to stream positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch

META_KEYS = ("row", "prompt_id", "step", "token")
BatchesFactory = Callable[[int], Iterable]


class NonFiniteActivationError(ValueError):
    """A NaN or infinite activation reached a dictionary; the message names site and row."""


@dataclass
class Batch:
    x: torch.Tensor  # [B, d] float32
    meta: dict[str, torch.Tensor] = field(default_factory=dict)  # key -> [B] int64
    positional: bool = False  # meta["row"] are stream positions, not store rows

    def __len__(self) -> int:
        return self.x.shape[0]

    def slice(self, a: int, b: int) -> Batch:
        return Batch(self.x[a:b], {k: v[a:b] for k, v in self.meta.items()}, self.positional)


def as_batch(item, position: int = 0) -> Batch:
    """Normalise one item of a batch iterable; ``position`` (tokens already seen in this
    stream) numbers rows when the item carries no ``row``."""
    if isinstance(item, Mapping):
        x, meta = item["x"], {k: item[k] for k in META_KEYS if k in item and item[k] is not None}
    elif isinstance(item, (tuple, list)):  # (x,), (x, row) or (x, {meta})
        x, m = item[0], (item[1] if len(item) > 1 else {})
        meta = {k: m[k] for k in META_KEYS if k in m and m[k] is not None} if isinstance(m, Mapping) else {"row": m}
    else:
        x, meta = item, {}
    x = torch.as_tensor(x).float()
    if x.ndim != 2:
        raise ValueError(f"activation batches must be [tokens, d], got shape {tuple(x.shape)}")
    meta = {k: torch.as_tensor(v).long().reshape(-1) for k, v in meta.items()}
    positional = "row" not in meta
    if positional:
        meta["row"] = torch.arange(position, position + len(x))
    return Batch(x, meta, positional)


def check_finite(batch: Batch, site: str) -> None:
    bad = ~torch.isfinite(batch.x).all(dim=1)
    if bad.any():
        i = int(bad.nonzero()[0])
        row = int(batch.meta["row"][i])
        what = "stream position" if batch.positional else "store row"
        cols = (~torch.isfinite(batch.x[i])).nonzero().flatten()[:5].tolist()
        raise NonFiniteActivationError(
            f"site '{site}': non-finite activation (NaN/inf) at {what} {row} "
            f"(dims {cols}, {int(bad.sum())} bad rows in this batch); "
            "fix or drop these rows in the activation store before training"
        )


def stream(factory: BatchesFactory, epoch: int, site: str, skip: int = 0) -> Iterator[Batch]:
    """Checked batches of one epoch, starting ``skip`` tokens in."""
    pos = 0
    for item in factory(epoch):
        b = as_batch(item, pos)
        n = len(b)
        pos += n
        if pos <= skip:
            continue
        if pos - n < skip:
            b = b.slice(skip - (pos - n), n)
        check_finite(b, site)
        yield b


def rebatch(
    factory: BatchesFactory, batch_size: int, site: str, epoch: int = 0, offset: int = 0
) -> Iterator[tuple[Batch, int, int]]:
    """Endless fixed-size batches over epochs ``epoch, epoch+1, ...``.

    Yields ``(batch, epoch, offset_after)``: resuming with that epoch and offset continues
    exactly after this batch. The tail of an epoch shorter than ``batch_size`` is dropped,
    so a batch never straddles two epochs."""
    while True:
        buf: list[Batch] = []
        have = 0
        produced = False
        for b in stream(factory, epoch, site, skip=offset):
            buf.append(b)
            have += len(b)
            while have >= batch_size:
                cat = _cat(buf)
                out, rest = cat.slice(0, batch_size), cat.slice(batch_size, len(cat))
                buf, have = ([rest] if len(rest) else []), len(rest)
                offset += batch_size
                produced = True
                yield out, epoch, offset
        if not produced and offset == 0:
            raise ValueError(f"site '{site}': epoch {epoch} has fewer than {batch_size} tokens")
        epoch, offset = epoch + 1, 0


def sample(factory: BatchesFactory, n_tokens: int, site: str) -> Batch:
    """The first ``n_tokens`` of epoch 0 (fewer if the epoch is shorter)."""
    buf, have = [], 0
    for b in stream(factory, 0, site):
        buf.append(b)
        have += len(b)
        if have >= n_tokens:
            break
    if not buf:
        raise ValueError(f"site '{site}': no activations")
    return _cat(buf).slice(0, n_tokens)


def _cat(bs: list[Batch]) -> Batch:
    if len(bs) == 1:
        return bs[0]
    keys = set.intersection(*(set(b.meta) for b in bs))
    meta = {k: torch.cat([b.meta[k] for b in bs]) for k in keys}
    return Batch(torch.cat([b.x for b in bs]), meta, any(b.positional for b in bs))
