"""Does the SAE's initial encoder scale (`encoder_init_norm`) carry from bench_sae to the toy?

bench_sae.md found diffdict's TopK SAE at held-out FVU 0.045 instead of 0.069 when the encoder's
rows start at norm 0.577 (sparsify's nn.Linear init) rather than tied to the unit decoder rows.
Two runs of one config that differ only in that setting (`benchmarks/init_scale/*.yaml`) are read
here, side by side, for every resid site and SAE training run:

* held-out FVU on the site's `test` split (as the workflow's `reconstruction` rule, every run);
* training FVU along the way (`train_log.csv`, mean of the 5 logged steps up to each mark), to see
  whether the init's effect lasts or washes out with longer training;
* concept recovery beside random directions (`tables/concepts_summary.csv`).

The ground-truth checks of both runs go side by side through `ground_truth_runs.py`. The same
tables compare runs that differ in another initialisation setting (`init_distribution`, with
``--title``; `benchmarks/results/texture_world/init_distribution.md`).

    .venv/bin/python benchmarks/init_scale.py --runs "default, init 1.0=results/toy" \\
        "default, init 0.577=results/toy_enc577" "other config, init 1.0=results/toy_seed1" \\
        "other config, init 0.577=results/toy_seed1_enc577" --out benchmarks/results/texture_world/init_scale_runs
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
from diffdict.config import replicate_name  # noqa: E402
from diffdict.dictionaries import load_dictionary  # noqa: E402
from diffdict.metrics.reconstruction import reconstruction_metrics  # noqa: E402
from diffdict.store import ActivationStore  # noqa: E402

MARKS = (250, 1000, 2000)  # training steps (bench_sae trains 256 steps; the toy 6,250)


def sae_runs(run: Path) -> list[tuple[str, str]]:
    """(site, dict) of every SAE training run in a results tree (`sae`, `sae-r1`, ...: `replicate_name`)."""
    out = []
    for site in sorted(p for p in (run / "dictionaries").iterdir() if p.is_dir()):
        r = 0
        while (site / replicate_name("sae", r) / "dictionary.safetensors").exists():
            out.append((site.name, replicate_name("sae", r)))
            r += 1
    return out


def fvu_table(runs: dict[str, Path]) -> pd.DataFrame:
    rows = []
    for name, run in runs.items():
        for site, d in sae_runs(run):
            log = pd.read_csv(run / "dictionaries" / site / d / "train_log.csv").set_index("step")
            smooth = log["fvu"].rolling(5, min_periods=1).mean()
            test = run / "activations" / site / "test.zarr"
            m = {"fvu": float("nan"), "dead_fraction": float("nan")}  # a site captured without its test split
            if test.exists():  # a half-written store is refused by ActivationStore.open
                m = reconstruction_metrics(
                    load_dictionary(run / "dictionaries" / site / d / "dictionary.safetensors"),
                    ActivationStore.open(test).batches(4096, shuffle=False),
                )
            row = {"run": name, "site": site, "dict": d, "heldout_fvu": m["fvu"], "dead_fraction": m["dead_fraction"]}
            for s in MARKS:
                row[f"train_fvu_{s}"] = float(smooth[smooth.index <= s].iloc[-1])
            row["train_fvu_final"] = float(smooth.iloc[-1])
            row["steps"] = int(log.index[-1])
            rows.append(row)
    return pd.DataFrame(rows)


def concept_table(runs: dict[str, Path]) -> pd.DataFrame:
    frames = []
    for name, run in runs.items():
        s = run_table(run, "concepts_summary")
        s = s[(s["dict"] == "sae") & (s["metric"].isin(["token_auroc", "kind_token_auroc"]))]
        frames.append(s.assign(run=name))
    return pd.concat(frames, ignore_index=True)


def markdown(fvu: pd.DataFrame, concepts: pd.DataFrame, runs: list[str], cmd: str, title: str) -> str:
    out = [
        f"# {title}",
        "",
        f"Command: `{cmd}`",
        "",
        "## FVU, mean over the training runs (each run in the .csv)",
        "",
        "Held-out: the site's `test` split (the workflow's `reconstruction` metric; blank where the config",
        "captured no test split). Training: the logged batches, mean of the 5 logs up to each step.",
        "",
        "| site | run | held-out | " + " | ".join(f"train at step {s}" for s in MARKS) + " | train at the end |",
        "|" + "---|" * (4 + len(MARKS)),
    ]
    cols = ["heldout_fvu", *(f"train_fvu_{s}" for s in MARKS), "train_fvu_final"]
    mean = fvu.groupby(["site", "run"], sort=False)[cols].mean()
    for site in sorted(fvu["site"].unique()):
        for r in runs:
            if (site, r) not in mean.index:
                continue
            row = mean.loc[(site, r)]
            cells = [f"{row[c]:.4f}".replace("nan", "") for c in cols]
            out.append(f"| {site} | {r} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Concept recovery (held-out token AUROC, `concepts_summary.csv`)",
        "",
        "| site | question | run | SAE (runs) | random (null) | SAE − random [CI] | core mean | probe (ceiling) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    label = {"token_auroc": "all tokens", "kind_token_auroc": "within the kind"}
    for site in sorted(concepts["site"].unique()):
        for metric in label:
            g = concepts[(concepts["site"] == site) & (concepts["metric"] == metric)]
            for r in runs:
                h = g[g["run"] == r]
                if h.empty:
                    continue
                x = h.iloc[0]
                diff = f"{x['diff_vs_random']:+.3f} [{x['diff_lo']:+.3f}, {x['diff_hi']:+.3f}]"
                out.append(
                    f"| {site} | {label[metric]} | {r} | {x['mean']:.3f} ({x['replicate_means']}) | "
                    f"{x['mean'] - x['diff_vs_random']:.3f} | {diff} | {x['core_mean']:.3f} | {x['probe']:.3f} |"
                )
    return "\n".join(out) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, type=run_spec, help="name=results/<model> of finished runs")
    ap.add_argument("--out", required=True, help="path stem: writes <out>.md and <out>.csv")
    ap.add_argument("--title", default="The SAE's initial encoder scale on the toy", help="the .md's heading")
    a = ap.parse_args(argv)
    runs = dict(a.runs)
    fvu = fvu_table(runs)
    concepts = concept_table(runs)
    cmd = shlex.join([".venv/bin/python", "benchmarks/init_scale.py", *(argv or sys.argv[1:])])
    out = Path(a.out)
    write_table(out.with_suffix(".csv"), fvu, float_format="%.5g")
    text = markdown(fvu, concepts, list(runs), cmd, a.title)
    write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
