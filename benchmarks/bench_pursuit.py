"""Pursuit engines side by side: residual space vs atom space (Gram matrix), same codes.

For each (d, n_atoms, k): random unit atoms, tokens that are sparse non-negative combinations
of them, and the wall time of gradient pursuit over one batch with each engine (median of
--repeats; the Gram matrix is built once per dictionary and timed separately, as ITDA caches
it). The ratio says where `diffdict.dictionaries.pursuit.use_gram` should switch engines.

    python benchmarks/bench_pursuit.py [--tokens 1024] [--threads 2]

Writes benchmarks/results/bench_pursuit.{json,md}.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from diffdict.atomic import write_json, write_text  # noqa: E402
from diffdict.dictionaries.pursuit import pursuit, use_gram  # noqa: E402


def case(d: int, n: int, k: int, tokens: int, repeats: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    idx = torch.randint(0, n, (tokens, k), generator=g)
    x = torch.nn.functional.embedding_bag(idx, atoms, per_sample_weights=torch.rand(tokens, k, generator=g), mode="sum")
    t0 = time.perf_counter()
    gram = atoms @ atoms.T
    t_gram = time.perf_counter() - t0
    out = {}
    for name, gm in (("residual", None), ("atom", gram)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            c, i = pursuit("gradient", x, atoms, k, gram=gm)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
        out[f"{name}_fvu"] = float(
            (x - torch.nn.functional.embedding_bag(i, atoms, per_sample_weights=c, mode="sum")).pow(2).sum()
            / (x - x.mean(0)).pow(2).sum()
        )
    return {
        "d": d,
        "n_atoms": n,
        "k": k,
        "tokens": tokens,
        "residual_s": out["residual"],
        "atom_s": out["atom"],
        "speedup": out["residual"] / out["atom"],
        "gram_build_s": t_gram,
        "use_gram": use_gram(n, d),
        "residual_fvu": out["residual_fvu"],
        "atom_fvu": out["atom_fvu"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d", type=int, nargs="*", default=[64, 256, 1024, 3072])
    ap.add_argument("--n", type=int, nargs="*", default=[512, 4096])
    ap.add_argument("--k", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/bench_pursuit"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cmd = shlex.join(["python", "benchmarks/bench_pursuit.py", *(sys.argv[1:] if argv is None else argv)])
    rows = []
    for d in a.d:
        for n in a.n:
            for k in a.k:
                rows.append(case(d, n, k, a.tokens, a.repeats))
                print(rows[-1], flush=True)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_json(
        a.out + ".json", {"command": cmd, "date": date, "threads": a.threads, "rows": rows, "torch": torch.__version__}
    )
    agree = sum(r["use_gram"] == (r["speedup"] > 1) for r in rows)
    lines = [
        f"# bench_pursuit — gradient pursuit, residual vs atom-space engine ({date})",
        "",
        f"Command: `{cmd}` (torch threads {a.threads}, {a.tokens} tokens per batch)",
        "",
        "| d | atoms | k | residual s | atom-space s | speed-up | Gram build s | use_gram | FVU (both) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['d']} | {r['n_atoms']} | {r['k']} | {r['residual_s']:.4f} | {r['atom_s']:.4f} | "
            f"{r['speedup']:.2f}x | {r['gram_build_s']:.3f} | {r['use_gram']} | "
            f"{r['residual_fvu']:.4f} / {r['atom_fvu']:.4f} |"
        )
    lines += ["", f"`use_gram` picks the faster engine in {agree} of {len(rows)} cases."]
    write_text(a.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
