"""The activation store: one zarr v3 group per site and split, one row per kept token.

Layout (docs/architecture.md, "Activations"): arrays ``x`` [N, d] (float16, or bfloat16 bits
as uint16 with attribute ``dtype: bfloat16``), ``prompt_id`` [N] int64, ``step`` [N] int16,
``token`` [N] int32; group attributes ``site``, ``d_model``, ``grid``, ``dtype``, ``split``
plus ``n_rows`` (written last, checked on open).

All arrays share one row chunking (4096 rows by default) and are uncompressed: measured on
2-core machines, uncompressed 4096 x 3072 float16 chunks read as fast as a numpy memmap,
while compression was 2-4x slower. Random row access is slow, so training reads whole chunks
into a shuffle buffer (`ActivationStore.batches`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path

CHUNK_ROWS = 4096
META = {"prompt_id": np.int64, "step": np.int16, "token": np.int32}
DTYPES = ("float16", "bfloat16")
F16_MAX = 65504.0


# Snakemake drops a timestamp file into directory outputs; zarr need not warn about it.
warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp", module="zarr")


class StoreError(ValueError):
    """A missing, corrupt or truncated activation store."""


def _create(group, name, shape, chunks, dtype):
    return group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=None,
        fill_value=0,
        # write zero chunks too: a missing chunk file then always means a truncated store
        config={"write_empty_chunks": True},
    )


class ActivationWriter:
    """Append rows to a new store, built in a temporary directory and renamed on close.

    Use as a context manager; on an exception nothing appears at `path`::

        with ActivationWriter(path, d_model, attrs) as w:
            w.append(x, prompt_id=..., step=..., token=...)
    """

    def __init__(
        self, path, d_model: int, attrs: dict | None = None, dtype: str = "float16", chunk_rows: int = CHUNK_ROWS
    ):
        if dtype not in DTYPES:
            raise ValueError(f"store dtype '{dtype}' is not one of {list(DTYPES)}")
        self.path, self.d_model, self.dtype, self.chunk_rows = Path(path), int(d_model), dtype, int(chunk_rows)
        self.attrs = dict(attrs or {})
        self.n_rows = 0
        self._buf: list[tuple] = []
        self._buf_rows = 0
        self._ctx = None

    def __enter__(self) -> ActivationWriter:
        import zarr

        self._ctx = atomic_path(self.path, is_dir=True)
        tmp = self._ctx.__enter__()
        self._group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        r, d = self.chunk_rows, self.d_model
        self._arrays = {
            "x": _create(self._group, "x", (0, d), (r, d), "float16" if self.dtype == "float16" else "uint16")
        }
        for name, dt in META.items():
            self._arrays[name] = _create(self._group, name, (0,), (r,), dt)
        return self

    def append(self, x, prompt_id, step, token) -> None:
        """Append rows: `x` [n, d] (tensor or array) and per-row metadata (scalars broadcast)."""
        x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_model:
            raise ValueError(f"{self.path}: rows have shape {x.shape}, expected [n, {self.d_model}]")
        n = x.shape[0]
        if self.dtype == "float16":
            big = np.abs(x) > F16_MAX
            if big.any() or not np.isfinite(x).all():
                row = int(np.flatnonzero(big.any(1) | ~np.isfinite(x).all(1))[0])
                site = self.attrs.get("site", {}).get("name", "?")
                raise OverflowError(
                    f"{self.path}: site {site}: row {self.n_rows + self._buf_rows + row} "
                    f"has |x| = {float(np.abs(x[row]).max()):.4g}, not representable in float16 (max 65504); "
                    "store this site as bfloat16 (dtype='bfloat16')"
                )
            xs = x.astype(np.float16)
        else:
            xs = torch.from_numpy(x).to(torch.bfloat16).view(torch.uint16).numpy()
        meta = [np.broadcast_to(np.asarray(v, dt), (n,)) for v, dt in zip((prompt_id, step, token), META.values())]
        self._append_raw(xs, *meta)

    def _append_raw(self, xs: np.ndarray, *meta: np.ndarray) -> None:
        """Append rows already in the stored dtypes (no checks; used by `merge_stores`)."""
        self._buf.append((xs, *meta))
        self._buf_rows += len(xs)
        if self._buf_rows >= self.chunk_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buf:
            return
        cols = [np.concatenate(c) for c in zip(*self._buf)]
        # write whole chunks only (aligned writes never rewrite a chunk), keep the remainder
        n = len(cols[0]) if final else (len(cols[0]) // self.chunk_rows) * self.chunk_rows
        if n:
            lo, hi = self.n_rows, self.n_rows + n
            for arr, col in zip(self._arrays.values(), cols, strict=True):
                arr.resize((hi, *arr.shape[1:]))
                arr[lo:hi] = col[:n]
            self.n_rows = hi
        rest = [c[n:] for c in cols]
        self._buf = [tuple(rest)] if len(rest[0]) else []
        self._buf_rows = len(rest[0])

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._flush(final=True)
                self._group.attrs.update(
                    {
                        **self.attrs,
                        "d_model": self.d_model,
                        "dtype": self.dtype,
                        "n_rows": self.n_rows,
                        "chunk_rows": self.chunk_rows,
                    }
                )
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self._ctx.__exit__(exc_type, exc, tb)


class ActivationStore:
    """Read side of a store. Open with `ActivationStore.open(path)`."""

    def __init__(self, path: Path, group):
        self.path, self.group = path, group
        self.attrs = dict(group.attrs)
        self.x = group["x"]
        self._bf16 = self.attrs.get("dtype") == "bfloat16"

    @classmethod
    def open(cls, path) -> ActivationStore:
        import zarr

        path = Path(path)
        if not (path / "zarr.json").exists():
            raise StoreError(f"{path}: not an activation store (no zarr.json; missing or interrupted write)")
        try:
            group = zarr.open_group(str(path), mode="r")
            have = set(group.array_keys())
        except Exception as e:
            raise StoreError(f"{path}: unreadable zarr group: {e}") from e
        missing = [a for a in ("x", *META) if a not in have]
        if missing:
            raise StoreError(f"{path}: missing arrays {missing} (has {sorted(have)})")
        attrs = dict(group.attrs)
        if "n_rows" not in attrs or "d_model" not in attrs:
            raise StoreError(f"{path}: attributes 'n_rows'/'d_model' missing: the store was not closed properly")
        n, d = int(attrs["n_rows"]), int(attrs["d_model"])
        lens = {a: group[a].shape[0] for a in ("x", *META)}
        if any(v != n for v in lens.values()):
            raise StoreError(f"{path}: row count mismatch: n_rows attribute {n}, arrays {lens}")
        if group["x"].ndim != 2 or group["x"].shape[1] != d:
            raise StoreError(f"{path}: x has shape {group['x'].shape}, expected [{n}, {d}]")
        want = {"float16": np.float16, "bfloat16": np.uint16}.get(attrs.get("dtype"))
        if want is None or group["x"].dtype != want:
            raise StoreError(f"{path}: x is {group['x'].dtype} but the dtype attribute says {attrs.get('dtype')!r}")
        for a in ("x", *META):
            arr = group[a]
            if arr.nchunks_initialized != arr.nchunks:
                raise StoreError(
                    f"{path}: array '{a}' has {arr.nchunks_initialized} of {arr.nchunks} chunks on disk "
                    "(truncated store)"
                )
        return cls(path, group)

    def __len__(self) -> int:
        return int(self.attrs["n_rows"])

    @property
    def d_model(self) -> int:
        return int(self.attrs["d_model"])

    @property
    def chunk_rows(self) -> int:
        return int(self.x.chunks[0])

    def _to_torch(self, raw: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(raw))
        return (t.view(torch.bfloat16) if self._bf16 else t).float()

    def _read_x(self, sel) -> np.ndarray:
        try:
            if isinstance(sel, slice):
                return self.x[sel]
            return self.x.get_orthogonal_selection((sel, slice(None)))
        except Exception as e:  # e.g. a chunk file cut short
            raise StoreError(f"{self.path}: cannot read rows of 'x': {e}") from e

    def read(self, rows) -> torch.Tensor:
        """x for `rows` (a slice, or sorted/unsorted integer indices) as float32 [n, d]."""
        if isinstance(rows, slice):
            return self._to_torch(self._read_x(rows))
        idx = np.asarray(rows, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), self.d_model), dtype=self.x.dtype)
        out[order] = self._read_x(idx[order]) if len(idx) else out[:0]
        return self._to_torch(out)

    def mean(self, batch_size: int = 4096) -> torch.Tensor:
        """Per-dimension mean of every row (accumulated in float64), float32 [d]: the mean
        ablation of spliced generation and the centre of FVU."""
        total = torch.zeros(self.d_model, dtype=torch.float64)
        for x in self.batches(batch_size, shuffle=False):
            total += x.double().sum(0)
        return (total / max(len(self), 1)).float()

    def mean_token_norm(self, max_tokens: int = 65_536) -> float:
        """Mean L2 norm of the rows (the steering unit), over at most ``max_tokens`` rows evenly
        strided over the store, so that every shard and step contributes."""
        n = len(self)
        if n == 0:
            raise StoreError(f"{self.path}: activation store is empty; cannot measure the mean token norm")
        stride = max(1, n // max_tokens)
        rows = self.read(slice(0, min(n, stride * max_tokens), stride)).numpy()
        return float(np.linalg.norm(rows, axis=-1).mean())

    def meta(self, rows=slice(None)):
        """prompt_id, step, token of `rows` as a pandas DataFrame."""
        import pandas as pd

        def col(a):
            arr = self.group[a]
            return arr[rows] if isinstance(rows, slice) else arr.get_orthogonal_selection((np.asarray(rows),))

        return pd.DataFrame({a: col(a) for a in META})

    def _chunk(self, c: int, with_meta: bool, with_row: bool = False):
        lo, hi = c * self.chunk_rows, min((c + 1) * self.chunk_rows, len(self))
        x = self._read_x(slice(lo, hi))
        meta = [self.group[a][lo:hi] for a in META] if with_meta else []
        if with_row:  # each row's absolute index, so errors and ITDA provenance name store rows
            meta.append(np.arange(lo, hi))
        return (x, *meta)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        buffer_chunks: int = 8,
        with_meta: bool = False,
        drop_last: bool = False,
        prefetch: bool = True,
    ) -> Iterator:
        """One pass over the store in minibatches of float32 tensors [batch_size, d].

        Shuffling: chunks in a seeded random order, `buffer_chunks` chunks at a time pooled and
        their rows permuted, so memory stays at ``buffer_chunks * chunk_rows`` rows (twice that
        with `prefetch`, which reads the next buffer in a background thread). With
        ``with_meta`` each item is ``(x, meta)`` with meta a dict of int64 tensors."""
        n_chunks = -(-len(self) // self.chunk_rows)
        for cols, rows in shuffle_buffer(
            lambda c: self._chunk(c, with_meta, with_row=with_meta),
            n_chunks,
            batch_size,
            shuffle,
            seed,
            buffer_chunks,
            drop_last,
            prefetch,
        ):
            yield self._item(cols, rows, with_meta)

    def _item(self, cols, rows, with_meta):
        x = self._to_torch(cols[0][rows])
        if not with_meta:
            return x
        return x, {a: torch.from_numpy(c[rows].astype(np.int64)) for a, c in zip((*META, "row"), cols[1:])}


def shuffle_buffer(
    read_chunk,
    n_chunks: int,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    buffer_chunks: int = 8,
    drop_last: bool = False,
    prefetch: bool = True,
):
    """Chunk-shuffle schedule over any chunked columns: yields ``(cols, rows)`` per minibatch,
    `cols` the pooled buffer's arrays and `rows` the batch's row indices (a slice when not
    shuffling). ``read_chunk(c)`` returns a tuple of arrays for chunk c. Rows left over at the
    end of a buffer are carried into the next one, so every batch but the last is full.
    With `prefetch`, a background thread reads the next buffer while this one is consumed
    (I/O overlaps training; at most two buffers in memory)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_chunks) if shuffle else np.arange(n_chunks)
    step = max(1, buffer_chunks)
    groups = [order[g : g + step] for g in range(0, n_chunks, step)]

    def read_group(cs):
        return [read_chunk(int(c)) for c in cs]

    pool = ThreadPoolExecutor(1) if prefetch and len(groups) > 1 else None
    try:
        pending = pool.submit(read_group, groups[0]) if pool and groups else None
        carry = None
        for gi, cs in enumerate(groups):
            parts = pending.result() if pending else read_group(cs)
            pending = pool.submit(read_group, groups[gi + 1]) if pool and gi + 1 < len(groups) else None
            if carry is not None:
                parts.insert(0, carry)
            cols = [np.concatenate(c) if len(c) > 1 else c[0] for c in zip(*parts)]
            n = len(cols[0])
            n_full = (n // batch_size) * batch_size
            # permute indices, not the buffer: each batch is gathered once, straight from the pool
            perm = rng.permutation(n) if shuffle else None
            for b in range(0, n_full, batch_size):
                yield cols, (perm[b : b + batch_size] if shuffle else slice(b, b + batch_size))
            rest = perm[n_full:] if shuffle else slice(n_full, n)
            carry = tuple(c[rest] for c in cols)
        if carry is not None and len(carry[0]) and not drop_last:
            yield carry, slice(None)
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


def merge_stores(parts: Sequence, out, attrs: dict | None = None) -> int:
    """Concatenate part stores into `out`, streaming one chunk at a time. Parts must agree
    on d_model, dtype and site. Returns the number of rows."""
    stores = [ActivationStore.open(p) for p in parts]
    if not stores:
        raise ValueError("merge_stores: no parts given")
    first = stores[0].attrs
    for s in stores[1:]:
        for key in ("d_model", "dtype", "site"):
            if s.attrs.get(key) != first.get(key):
                raise StoreError(
                    f"cannot merge {s.path} into {out}: {key} {s.attrs.get(key)!r} != {first.get(key)!r} "
                    f"of {stores[0].path}"
                )
    keep = {k: v for k, v in first.items() if k not in ("n_rows", "shard", "chunk_rows", "d_model", "dtype")}
    keep.update({"parts": [s.path.name for s in stores], **(attrs or {})})
    writer = ActivationWriter(out, stores[0].d_model, keep, dtype=first["dtype"])
    with writer:
        for s in stores:
            for c in range(-(-len(s) // s.chunk_rows)):
                x, *meta = s._chunk(c, with_meta=True)
                writer._append_raw(x, *meta)
    return writer.n_rows
