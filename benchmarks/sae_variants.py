"""SAE variants side by side, each beside random directions: one row per run and site, one cell
per measure holding every variant's value ("a / b"), bold where its CI against random excludes 0.

Reads finished runs' tables (`concepts_summary.csv`, `concepts.csv`, `ground_truth.csv`) and the
held-out reconstruction of every replicate (`metrics/{site}/{dict}*/reconstruction.json`, built by
asking for those targets). For the variants of `batch_topk.md`:

    .venv/bin/python benchmarks/sae_variants.py --runs default=results/toy other=results/toy_seed1 \\
        --dicts sae batchtopk --out benchmarks/results/texture_world/batch_topk_variants
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from concept_kinds import by_kind  # noqa: E402
from ground_truth_runs import run_spec, run_table  # noqa: E402
from matryoshka_latents import replicates  # noqa: E402

from diffdict.atomic import write_table, write_text  # noqa: E402

KINDS = ("color", "texture", "shape")  # within-kind columns: the kinds a generic object feature cannot answer
INTERP = "interp_balanced_accuracy_vs_random (annotation)"


def fvu(run: Path, site: str, d: str) -> float:
    """Mean held-out FVU over the replicates whose `reconstruction.json` was built (NaN if none)."""
    paths = [r / "reconstruction.json" for r in replicates(run / "metrics" / site, d)]
    vals = [json.loads(p.read_text())["fvu"] for p in paths if p.exists()]
    return float(np.mean(vals)) if vals else float("nan")


def rows(name: str, run: Path, dicts: list[str], n_boot: int) -> list[dict]:
    summary = run_table(run, "concepts_summary").set_index(["site", "dict", "metric"])
    checks = run_table(run, "ground_truth").set_index(["site", "dict", "check"])
    kinds = by_kind(run_table(run, "concepts"), n_boot).set_index(["site", "dict", "metric", "concept_kind"])
    out = []
    for site in sorted({s for s, d, _ in summary.index if d in dicts}):
        for d in dicts:
            if (site, d, "token_auroc") not in summary.index:
                continue
            tok, kin = summary.loc[(site, d, "token_auroc")], summary.loc[(site, d, "kind_token_auroc")]
            row = {
                "run": name,
                "site": site,
                "dict": d,
                "fvu": fvu(run, site, d),
                "core_lowest_run": checks.loc[(site, d, "core_token_auroc"), "value"],
                "core_mean": tok["core_mean"],
            }
            for col, r in (("all", tok), ("within", kin)):
                row |= {col: r["diff_vs_random"], f"{col}_lo": r["diff_lo"], f"{col}_hi": r["diff_hi"]}
            for k in KINDS:  # a kind the world lacks (texture in the plain world): NaN, shown as "—"
                key = (site, d, "kind_token_auroc", k)
                r = kinds.loc[key] if key in kinds.index else {"diff_vs_random": np.nan, "diff_lo": 0, "diff_hi": 0}
                row |= {k: r["diff_vs_random"], f"{k}_lo": r["diff_lo"], f"{k}_hi": r["diff_hi"]}
            c = checks.loc[(site, d, INTERP)]
            row |= {"interp": c["value"], "interp_lo": c["lo"], "interp_hi": c["hi"]}
            out.append(row)
    return out


def cell(g: pd.DataFrame, col: str) -> str:
    parts = []
    for _, r in g.iterrows():
        if pd.isna(r[col]):
            parts.append("—")
            continue
        text = f"{r[col]:+.3f}" if f"{col}_lo" in r else f"{r[col]:.3f}"
        sep = f"{col}_lo" in r and (r[f"{col}_lo"] > 0 or r[f"{col}_hi"] < 0)
        parts.append(f"**{text}**" if sep else text)
    return " / ".join(parts)


COLUMNS = {
    "fvu": "held-out FVU",
    "core_lowest_run": "core token AUROC, lowest run",
    "all": "all concepts − random",
    "within": "within the kind − random",
    **{k: f"{k} within − random" for k in KINDS},
    "interp": "interpretability (image) − random",
}


def markdown(df: pd.DataFrame, dicts: list[str], cmd: str) -> str:
    out = [
        f"# {' / '.join(dicts)}, each beside random directions",
        "",
        f"Command: `{cmd}`",
        "",
        f"Each cell: {' / '.join(dicts)}. Differences to random directions of the same width with their hierarchical",
        "95 % CIs (runs, then concepts or latents), **bold** where the CI excludes 0; FVU: mean over the runs.",
        "",
        "| run | site | " + " | ".join(COLUMNS.values()) + " |",
        "|" + "---|" * (len(COLUMNS) + 2),
    ]
    for (run, site), g in df.groupby(["run", "site"], sort=False):
        g = g.set_index("dict").loc[[d for d in dicts if d in set(g["dict"])]].reset_index()
        out.append(f"| {run} | {site} | " + " | ".join(cell(g, c) for c in COLUMNS) + " |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, type=run_spec, help="name=results/<model> of finished runs")
    ap.add_argument("--dicts", nargs="+", required=True, help="the variants (dictionary names), in column order")
    ap.add_argument("--out", type=Path, required=True, help="output stem (.csv and .md)")
    ap.add_argument("--n-boot", type=int, default=2000)
    a = ap.parse_args(argv)
    cmd = shlex.join([".venv/bin/python", "benchmarks/sae_variants.py", *(sys.argv[1:] if argv is None else argv)])
    df = pd.DataFrame([r for name, run in a.runs for r in rows(name, run, a.dicts, a.n_boot)])
    write_table(a.out.with_suffix(".csv"), df)
    write_text(a.out.with_suffix(".md"), markdown(df, a.dicts, cmd))
    print(a.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
