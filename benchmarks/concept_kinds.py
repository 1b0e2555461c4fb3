"""Concept recovery per concept kind, each beside random directions and the probe ceiling.

Reads finished runs' `tables/concepts.csv` (held-out token AUROC, all tokens and within the
kind) and, for each run, site, dictionary and kind of concept (colour, texture, shape, ...),
writes the mean over the kind's concepts and its runs, the difference to random directions with
the same hierarchical CI as `concepts_summary.csv` (runs, then concepts), and the probe's mean.
Used to compare the plain shapes world (`shapes_world.yaml`) with the default texture world, where
the question is whether a concept each token carries by itself is what the SAE finds:

    .venv/bin/python benchmarks/concept_kinds.py --runs shapes=results/shapes texture=results/toy \\
        --out benchmarks/results/concept_kinds
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ground_truth_runs import run_spec, run_table  # noqa: E402

from diffdict.atomic import write_table, write_text  # noqa: E402
from diffdict.metrics.concept_summary import summarize_concepts  # noqa: E402
from diffdict.plots.concepts import GROUP_ORDER  # noqa: E402
from diffdict.world.scene import concept_kind  # noqa: E402

METRICS = {"token_auroc": "all tokens", "kind_token_auroc": "within the kind"}


def by_kind(table: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """`summarize_concepts` on each kind's concepts alone (one row per site, dict, kind, metric)."""
    kinds = concept_kind(table["concept"])
    parts = [
        summarize_concepts(table[kinds == k], metrics=tuple(METRICS), n_boot=n_boot).assign(concept_kind=k)
        for k in kinds.unique()
    ]
    return pd.concat(parts, ignore_index=True)


def markdown(df: pd.DataFrame, cmd: str) -> str:
    out = [
        "# Concept recovery per concept kind, beside random directions and the probe",
        "",
        f"Command: `{cmd}`",
        "",
        "Held-out token AUROC of each dictionary's best feature per concept (`tables/concepts.csv`),",
        "mean over the kind's concepts and the dictionary's runs; `− random`: the difference to",
        "random directions of the same width with its hierarchical 95 % CI (runs, then concepts);",
        "bold where the CI excludes 0. Probe: the linear probe's ceiling on the same split.",
        "",
    ]
    for metric, label in METRICS.items():
        d = df[(df["metric"] == metric) & (df["kind"] != "random")]
        dicts = sorted(d["dict"].unique())
        out += [f"## {label}", "", "| run | site | kind | " + " | ".join(dicts) + " | random | probe |"]
        out.append("|" + "---|" * (len(dicts) + 5))
        rnd = df[(df["metric"] == metric) & (df["kind"] == "random")].set_index(["run", "site", "concept_kind"])
        order = {k: i for i, k in enumerate(GROUP_ORDER)}
        d = d.assign(_k=d["concept_kind"].map(order)).sort_values(["run", "site", "_k"], kind="stable")
        for (run, site, kind), g in d.groupby(["run", "site", "concept_kind"], sort=False):
            cells = []
            for name in dicts:
                row = g[g["dict"] == name]
                if row.empty:
                    cells.append("")
                    continue
                r = row.iloc[0]
                if pd.isna(r["diff_vs_random"]):  # no random directions at this site (neurons)
                    cells.append(f"{r['mean']:.3f}")
                    continue
                diff = f"{r['diff_vs_random']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]"
                cells.append(f"{r['mean']:.3f} ({'**' + diff + '**' if r['separated'] else diff})")
            base = rnd["mean"].get((run, site, kind))
            base = "—" if base is None else f"{base:.3f}"
            out.append(f"| {run} | {site} | {kind} | " + " | ".join(cells) + f" | {base} | {g['probe'].iloc[0]:.3f} |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, type=run_spec, help="name=results/<model> of finished runs")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/concept_kinds"))
    ap.add_argument("--n-boot", type=int, default=2000)
    a = ap.parse_args(argv)
    cmd = shlex.join([".venv/bin/python", "benchmarks/concept_kinds.py", *(sys.argv[1:] if argv is None else argv)])
    frames = []
    for name, run in a.runs:
        frames.append(by_kind(run_table(run, "concepts"), a.n_boot).assign(run=name))
    df = pd.concat(frames, ignore_index=True)
    write_table(a.out.with_suffix(".csv"), df)
    write_text(a.out.with_suffix(".md"), markdown(df, cmd))
    print(a.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
