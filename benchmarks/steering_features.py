"""Colour steering per feature, with CIs over features: is a dictionary's shift toward the concept
its feature was explained as more than its null and more than random directions'?

From a run's `tables/steering.csv`, through `diffdict.steering.metrics.steering_summary`: each
steered feature's mean shift at positive strengths (over the prompts), graded against its own
colour (`own`) and against the other colours (`other_value`, the null); over features, the mean
with its 95 % CI, own − other (paired by feature) and own − random directions' own (unpaired).

    .venv/bin/python benchmarks/steering_features.py --results results/toy_steer16 \
        --baseline results/toy --out benchmarks/results/texture_world/steer_colours
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from diffdict.steering.metrics import steering_summary


def summarise(results: Path, label: str) -> pd.DataFrame:
    """The run's `own` rows of `steering_summary` (each with its null and CIs), recomputed from
    `tables/steering.csv` so that runs collected before the CIs existed read the same."""
    summary = steering_summary(pd.read_csv(results / "tables/steering.csv"))
    other = summary[summary.graded_against == "other_value"].set_index(["site", "dict"])["mean_shift_positive"]
    own = summary[summary.graded_against == "own"].set_index(["site", "dict"])
    return own.assign(run=label, other=other).reset_index()


def cell(est, lo, hi) -> str:
    return "" if pd.isna(est) else f"{est:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="results/<model> of the run to read")
    ap.add_argument("--baseline", help="another run (e.g. the default's 4 features) shown beside it")
    ap.add_argument("--out", required=True, help="output stem: .md and .csv")
    a = ap.parse_args()
    runs = [summarise(Path(a.results), Path(a.results).name)]
    if a.baseline:
        runs.append(summarise(Path(a.baseline), Path(a.baseline).name))
    table = pd.concat(runs, ignore_index=True)
    table.to_csv(f"{a.out}.csv", index=False)
    show = pd.DataFrame(
        {
            "run": table.run,
            "site": table.site,
            "dictionary": table["dict"],
            "features": table.n_features,
            "shift toward its own colour": [
                cell(*r) for r in table[["mean_shift_positive", "shift_lo", "shift_hi"]].to_numpy()
            ],
            "toward the other colours (null)": table.other.map("{:+.3f}".format),
            "own − other": [cell(*r) for r in table[["minus_other", "minus_other_lo", "minus_other_hi"]].to_numpy()],
            "own − random directions' own": [
                cell(*r) for r in table[["minus_random", "minus_random_lo", "minus_random_hi"]].to_numpy()
            ],
        }
    )
    cmd = f".venv/bin/python benchmarks/steering_features.py --results {a.results}"
    cmd += f" --baseline {a.baseline}" if a.baseline else ""
    lines = [
        "# Colour steering per feature, with CIs over features",
        "",
        f"Command: `{cmd} --out {a.out}`",
        "",
        "Mean shift of the annotator's colour score at positive strengths, per steered feature (over its "
        "prompts), then over features; 95 % bootstrap CIs over features (the first training run only is "
        "steered). `own − other` pairs each feature with its own null.",
        "",
        show.to_markdown(index=False),
        "",
    ]
    Path(f"{a.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
