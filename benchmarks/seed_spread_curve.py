"""seed_spread's records side by side: the SAE against random directions of the same k, as k moves.

Reads `seed_spread.py` CSV records (`label=path`, one per setting) and writes one row per record and site: the
SAE's and random directions' means over the seeds (all concepts, the core check's kinds, the concept-free
`object` label, colour and shape within their kind), the margin over all concepts with a 95 % bootstrap
CI (SAE and random seeds resampled independently), the seeds whose own margin (SAE seed s minus random
seed s) reaches issue 14's 0.15, the runs passing the core check and the runs that lose the foreground
feature (`object` < 0.95). Seconds; nothing is trained. seed_spread's twelfth question reads it:

    .venv/bin/python benchmarks/seed_spread_curve.py \\
        --records "k 4=benchmarks/results/texture_world/seed_spread_workflow_k4_random_k4.csv" \\
        "k 8=benchmarks/results/texture_world/seed_spread_workflow.csv" \\
        "k 12=benchmarks/results/texture_world/seed_spread_workflow_k12_random_k12.csv" \\
        "k 16=benchmarks/results/texture_world/seed_spread_workflow_k16_random_k16.csv" \\
        "k 24=benchmarks/results/texture_world/seed_spread_workflow_k24_random_k24.csv" \\
        --out benchmarks/results/texture_world/seed_spread_k_curve.md

and its thirteenth, for BatchTopK:

    .venv/bin/python benchmarks/seed_spread_curve.py \\
        --records "BatchTopK, k 4=benchmarks/results/texture_world/seed_spread_workflow_batchtopk_k4_random_k4.csv" \\
        "BatchTopK, k 6=benchmarks/results/texture_world/seed_spread_workflow_batchtopk_k6_random_k6.csv" \\
        "BatchTopK, k 8=benchmarks/results/texture_world/seed_spread_workflow_batchtopk.csv" \\
        "BatchTopK, k 12=benchmarks/results/texture_world/seed_spread_workflow_batchtopk_k12_random_k12.csv" \\
        --out benchmarks/results/texture_world/seed_spread_batchtopk_k_curve.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from record import write_record  # noqa: E402

from diffdict.bootstrap import hierarchical_ci  # noqa: E402

MARGIN = 0.15  # issue 14's margin over random directions, all concepts
CORE = 0.90  # its core check, per run
LOST = 0.95  # below this the run's best "object" feature has split (seed_spread's fourth question)
MEANS = ("all", "core", "object", "kind_color", "kind_shape")


def row(label: str, site: str, df: pd.DataFrame) -> dict:
    sae = df[df.method != "random"].set_index("seed").sort_index()
    rnd = df[df.method == "random"].set_index("seed").sort_index()
    if sae.empty or rnd.empty:
        raise SystemExit(f"{label}, {site}: a seed_spread record needs the dictionary's rows and random directions'")
    out = {"setting": label, "site": site, "runs": len(sae)}
    for col in (c for c in MEANS if c in df.columns):  # records from before seed_spread's fourth question lack some
        out[f"{col} (dict)"] = sae[col].mean()
        out[f"{col} (random)"] = rnd[col].mean()
    # each seed a run of one unit: the hierarchical bootstrap then resamples the two methods' seeds independently
    margin, lo, hi = hierarchical_ci(*([np.array([v]) for v in m["all"]] for m in (sae, rnd)), n_boot=10_000)
    paired = (sae["all"] - rnd["all"]).dropna()
    out |= {
        "margin (all)": margin,
        "margin CI": f"[{lo:+.3f}, {hi:+.3f}]",
        f"seeds with margin >= {MARGIN}": int((paired >= MARGIN).sum()),
        f"runs core >= {CORE}": int((sae["core"] >= CORE).sum()),
    }
    if "object" in df.columns:
        out[f"runs object < {LOST}"] = int((sae["object"] < LOST).sum())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", nargs="+", required=True, help="label=path of a seed_spread CSV, in order")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/texture_world/seed_spread_k_curve.md"))
    a = ap.parse_args()
    pairs = [r.split("=", 1) for r in a.records]
    if bad := [r for r, p in zip(a.records, pairs) if len(p) != 2 or not Path(p[1]).is_file()]:
        ap.error(f"--records: each must be label=path of an existing CSV: {bad}")
    records = [(label, pd.read_csv(path)) for label, path in pairs]
    df = pd.DataFrame([row(label, site, r[r.site == site]) for label, r in records for site in r.site.unique()])
    about = [
        "Each row: one site of a seed_spread record (its seeds' runs of the dictionary and of random directions at the",
        "k the record names). Means over the seeds; the margin's 95 % CI resamples the dictionary's and random",
        f"directions' seeds independently. Issue 14 asks a margin >= {MARGIN} and every run's core >= {CORE}.",
        "Records: " + ", ".join(f"{label} `{path}`" for label, path in pairs) + ".",
    ]
    title = "seed_spread's records side by side: the dictionary against random directions"
    write_record(a.out, title, [*about, "", df.round(3).to_markdown(index=False), ""], df)


if __name__ == "__main__":
    main()
