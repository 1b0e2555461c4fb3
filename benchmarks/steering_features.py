"""Colour steering per feature, with CIs over features: is a dictionary's shift toward the concept
its feature was explained as more than its null and more than random directions'?

From a run's `tables/steering.csv`: each steered feature's mean shift at positive strengths (over
the prompts), graded against its own colour (`own`) and against the other colours (`other_value`,
the null); then, over features (`diffdict.bootstrap`, one run: the steered run), the mean with its
95 % CI, own − other (paired by feature), and own − random directions' own (unpaired).

    .venv/bin/python benchmarks/steering_features.py --results results/toy_steer16 \
        --baseline results/toy --out benchmarks/results/texture_world/steer_colours
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from diffdict.bootstrap import hierarchical_ci

NULL_DICT = "random"


def per_feature(table: pd.DataFrame) -> pd.DataFrame:
    """[site, dict, feature] x {own, other_value}: mean shift at positive strengths."""
    pos = table[table.strength > 0]
    return pos.pivot_table(index=["site", "dict", "feature"], columns="graded_against", values="shift", aggfunc="mean")


def summarise(results: Path, label: str) -> pd.DataFrame:
    feats = per_feature(pd.read_csv(results / "tables/steering.csv"))
    rows = []
    for (site, name), f in feats.groupby(level=["site", "dict"]):
        own, other = f["own"].to_numpy(), f["other_value"].to_numpy()
        row = {"run": label, "site": site, "dict": name, "features": len(f)}
        row["own"], row["own_lo"], row["own_hi"] = hierarchical_ci([own])
        row["other"] = float(other.mean())
        row["own_minus_other"], row["d_other_lo"], row["d_other_hi"] = hierarchical_ci([own], [other], paired=True)
        if name != NULL_DICT and (site, NULL_DICT) in feats.index.droplevel("feature"):
            null = feats.loc[(site, NULL_DICT), "own"].to_numpy()
            row["own_minus_random"], row["d_random_lo"], row["d_random_hi"] = hierarchical_ci([own], [null])
        rows.append(row)
    return pd.DataFrame(rows)


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
            "features": table.features,
            "shift toward its own colour": [cell(*r) for r in table[["own", "own_lo", "own_hi"]].to_numpy()],
            "toward the other colours (null)": table.other.map("{:+.3f}".format),
            "own − other": [cell(*r) for r in table[["own_minus_other", "d_other_lo", "d_other_hi"]].to_numpy()],
            "own − random directions' own": [
                cell(*r) for r in table[["own_minus_random", "d_random_lo", "d_random_hi"]].to_numpy()
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
