"""Shuffled-minibatch read throughput: zarr activation store vs a numpy memmap of the same data.

Both sides run the same chunk-shuffle code (`diffdict.store.shuffle_buffer`: chunks in random
order, `buffer_chunks` chunks pooled, rows gathered in permuted order, float32 torch batches
out), so the comparison isolates the storage layer. Target: zarr >= 0.5x the memmap. The page
cache is warm for both (written just before; dropping caches would disturb the other users of
this machine).

    python benchmarks/bench_store.py [--rows 65536] [--d 3072] [--repeats 5]

Writes benchmarks/results/bench_store.{json,md}.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from diffdict.atomic import write_json, write_text
from diffdict.store import CHUNK_ROWS, ActivationStore, ActivationWriter, shuffle_buffer

RESULTS = Path(__file__).parent / "results"


def command_line(argv) -> str:
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{Path(__file__).name}", *args])


def memmap_batches(mm: np.ndarray, batch_size, seed, buffer_chunks, prefetch, chunk_rows=CHUNK_ROWS):
    """The store's own shuffle schedule and conversion, reading chunks from a memmap instead."""
    n_chunks = -(-len(mm) // chunk_rows)

    def read(c):  # a real copy, so the read happens in the reading thread like zarr's
        return (np.array(mm[c * chunk_rows : (c + 1) * chunk_rows]),)

    for cols, rows in shuffle_buffer(read, n_chunks, batch_size, True, seed, buffer_chunks, prefetch=prefetch):
        yield torch.from_numpy(cols[0][rows]).float()


def consume(it) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for x in it:
        n += x.shape[0]
    return time.perf_counter() - t0, n


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--d", type=int, default=3072)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--buffer-chunks", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(dir=a.dir))
    try:
        rng = np.random.default_rng(0)
        zpath, mpath = tmp / "x.zarr", tmp / "x.f16"
        mm = np.lib.format.open_memmap(mpath, mode="w+", dtype=np.float16, shape=(a.rows, a.d))
        t0 = time.perf_counter()
        with ActivationWriter(zpath, a.d, {"site": {"name": "bench"}}) as w:
            for lo in range(0, a.rows, CHUNK_ROWS):
                x = rng.standard_normal((min(CHUNK_ROWS, a.rows - lo), a.d), dtype=np.float32)
                w.append(x, prompt_id=0, step=0, token=np.arange(len(x)))
                mm[lo : lo + len(x)] = x
        write_s = time.perf_counter() - t0
        mm.flush()
        del mm
        store = ActivationStore.open(zpath)
        mm = np.load(mpath, mmap_mode="r")
        gb = a.rows * a.d * 2 / 1e9
        times = {(k, p): [] for k in ("zarr", "memmap") for p in (False, True)}
        for r in range(a.repeats):  # interleaved, best of
            for p in (False, True):
                it = store.batches(a.batch, shuffle=True, seed=r, buffer_chunks=a.buffer_chunks, prefetch=p)
                times["zarr", p].append(consume(it)[0])
                times["memmap", p].append(consume(memmap_batches(mm, a.batch, r, a.buffer_chunks, p))[0])
        best = {k: min(v) for k, v in times.items()}
        ratio = {p: best["memmap", p] / best["zarr", p] for p in (False, True)}
        res = {
            "command": command_line(argv),
            "rows": a.rows,
            "d": a.d,
            "float16_GB": gb,
            "batch": a.batch,
            "buffer_chunks": a.buffer_chunks,
            "chunk_rows": CHUNK_ROWS,
            "write_s_both": write_s,
            "seconds_best": {f"{k}{'_prefetch' if p else ''}": v for (k, p), v in best.items()},
            "seconds_all": {f"{k}{'_prefetch' if p else ''}": v for (k, p), v in times.items()},
            "ratio_no_prefetch": ratio[False],
            "ratio_prefetch": ratio[True],
            "target_ratio": 0.5,
            "ok": min(ratio.values()) >= 0.5,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(RESULTS / "bench_store.json", res, sort_keys=False)
    md = [
        "# Activation store: shuffled minibatch reads, zarr vs numpy memmap",
        "",
        f"Command: `{res['command']}` (best of {a.repeats}, interleaved; warm page cache; torch threads {a.threads})",
        "",
        f"{a.rows} rows x {a.d} float16 ({gb:.2f} GB), chunks of {CHUNK_ROWS} rows uncompressed, "
        f"batches of {a.batch} float32, shuffle buffer {a.buffer_chunks} chunks.",
        "",
        "| reader | prefetch thread | seconds | GB/s (float16 read) |",
        "|---|---|---|---|",
    ]
    for (k, p), v in best.items():
        name = "zarr `ActivationStore.batches`" if k == "zarr" else "numpy memmap, same code"
        md.append(f"| {name} | {'yes' if p else 'no'} | {v:.3f} | {gb / v:.2f} |")
    md += [
        "",
        f"zarr / memmap throughput: **{ratio[False]:.2f}x** without prefetch, **{ratio[True]:.2f}x** with "
        f"(target >= 0.5x: {'met' if res['ok'] else 'NOT met'}).",
    ]
    write_text(RESULTS / "bench_store.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return res


if __name__ == "__main__":
    main()
