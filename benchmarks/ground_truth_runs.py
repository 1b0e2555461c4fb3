"""Issue 14's ground-truth checks across finished runs: one row per (site, dictionary, check), one
column per run, and how many runs pass, so the spread between prompt sets or seeds is read beside
the distance to each threshold.

Reads each run's `tables/ground_truth.csv` (written by the workflow's `collect_ground_truth`):

    .venv/bin/python benchmarks/ground_truth_runs.py \\
        --runs "prompts 0 (default)=results/toy" "prompts 2=results/toy_p2" \\
        "prompts 3=results/toy_p3" "prompts 4=results/toy_p4" \\
        --out benchmarks/results/texture_world/prompt_seeds_checks
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from diffdict.atomic import write_table, write_text  # noqa: E402
from diffdict.dictionaries.base import read_metadata  # noqa: E402
from diffdict.metrics.ground_truth import RULE, budget_text, off_budget, rule_of, value_text  # noqa: E402


def run_spec(spec: str) -> tuple[str, Path]:
    """argparse type of ``--runs`` items: ``name=results/<model>``."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"takes name=results/<model>; got {spec!r}")
    return name, Path(path)


def run_table(run: Path, table: str) -> pd.DataFrame:
    """``<run>/tables/<table>.csv`` of a finished run; a missing one is refused with the target to build."""
    path = run / "tables" / f"{table}.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the workflow to {path} first")
    return pd.read_csv(path)


def trained_on(run: Path) -> str:
    """The devices that built a run's dictionaries (their metadata; dictionaries built before
    2026-12-06 did not record it): the same code trains other weights on another CPU."""
    paths = run.glob("dictionaries/*/*/dictionary.safetensors")
    found = {read_metadata(p).get("extra", {}).get("device") for p in paths}
    named = sorted(d for d in found if d)
    return "; ".join(named + (["not recorded"] if None in found else [])) or "no dictionaries"


def collect(runs: dict[str, Path]) -> pd.DataFrame:
    """Every run's checks, with a ``run`` column (in the order given)."""
    return pd.concat([run_table(run, "ground_truth").assign(run=name) for name, run in runs.items()], ignore_index=True)


def markdown(df: pd.DataFrame, runs: dict[str, Path], cmd: str) -> str:
    out = [
        "# Ground-truth checks across runs",
        "",
        f"Command: `{cmd}`",
        "",
        "Dictionaries built on: " + "; ".join(f"{name}: {trained_on(run)}" for name, run in runs.items()),
        "",
        "Each cell: the check's value [CI] in that run (`tables/ground_truth.csv`), **bold** where it fails",
        "(for the core check the lowest training run, listed in the run's table). `passed`: runs passing.",
        "A comparison with random directions where the dictionary keeps more latents per token than they do",
        "fails whatever its value and shows both budgets (dictionary / random).",
        "",
        "| site | dictionary | check | threshold | " + " | ".join(runs) + " | passed |",
        "|" + "---|" * (len(runs) + 5),
    ]
    for (site, d, check), g in df.groupby(["site", "dict", "check"], sort=False):
        g = g.set_index("run")
        cells = []
        for r in runs:
            if r not in g.index:
                cells.append("")
                continue
            row = g.loc[r]
            text = value_text(row)
            if off_budget(row):
                text += f" (not at one budget: {budget_text(row)})"
            cells.append(text if g.loc[r, "passed"] else f"**{text}**")
        passed = f"{int(g['passed'].sum())} of {len(g)}"
        out.append(f"| {site} | {d} | {check} | {RULE[rule_of(check)]} | " + " | ".join(cells) + f" | {passed} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, type=run_spec, help="name=results/<model> of finished runs")
    ap.add_argument("--out", required=True, help="path stem: writes <out>.md and <out>.csv")
    ap.add_argument("--dicts", nargs="+", help="only these dictionaries (default: every one a run checks)")
    a = ap.parse_args(argv)
    runs = dict(a.runs)
    df = collect(runs)
    if a.dicts:
        unknown = sorted(set(a.dicts) - set(df["dict"]))
        if unknown:
            raise SystemExit(f"--dicts {unknown} not checked in any run; checked: {sorted(set(df['dict']))}")
        df = df[df["dict"].isin(a.dicts)]
    cmd = shlex.join([".venv/bin/python", "benchmarks/ground_truth_runs.py", *(argv or sys.argv[1:])])
    out = Path(a.out)
    write_table(out.with_suffix(".csv"), df, float_format="%.4g")
    text = markdown(df, runs, cmd)
    write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
