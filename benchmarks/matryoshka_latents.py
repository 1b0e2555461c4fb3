"""Which latents of a Matryoshka SAE are explained, and how well: its score by nested prefix group.

`matryoshka.md` found the Matryoshka SAE better at isolating concepts than the plain SAE but
explained worse by the image question. This splits every dictionary's latents into the
Matryoshka prefix groups (latents 0-15, 16-31, 32-63, 64-127 for 128 latents and the kind's
default prefixes) and reports per group, pooled over a dictionary's runs: how often the latents
fire (share of tokens, images), how many the detection protocol leaves out and why
(`interp.protocol.eligibility`: "dense" = too few held-out images without it to judge; "rare"),
and the interpretability scores of those scored, each beside random directions' scores over all
their latents with the hierarchical CI of the difference (runs, then latents). For the plain SAE
and random directions the groups are arbitrary index ranges: the control.

    .venv/bin/python benchmarks/matryoshka_latents.py --runs default=results/toy other=results/toy_seed1 \\
        --out benchmarks/results/texture_world/matryoshka_latents

Reads finished runs of `benchmarks/matryoshka.yaml` (the commands are in `matryoshka.md`).
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

from ground_truth_runs import run_spec  # noqa: E402

from diffdict.atomic import write_table, write_text  # noqa: E402
from diffdict.bootstrap import hierarchical_ci  # noqa: E402
from diffdict.dictionaries.matryoshka import MatryoshkaConfig  # noqa: E402
from diffdict.interp.protocol import eligibility  # noqa: E402

SCORES = {"balanced_accuracy": "image question", "token_f1": "token F1"}  # the headline scores


def replicates(features: Path, name: str) -> list[Path]:
    """The run directories of dictionary `name`: itself, then `name-r1`, `name-r2`, ..."""
    out, r = [features / name], 1
    while (features / f"{name}-r{r}").is_dir():
        out.append(features / f"{name}-r{r}")
        r += 1
    return [p for p in out if p.is_dir()]


def latents(run: Path, site: str, d: str, explainer: str) -> pd.DataFrame:
    """One row per latent of every run of `d`: frequency, eligibility, scores (NaN if not sampled)."""
    frames = []
    for rep, fdir in enumerate(replicates(run / "features" / site, d)):
        st = pd.read_parquet(fdir / "stats.parquet")
        info = json.loads((fdir / "tasks.json").read_text())["info"]
        why = eligibility(st, pd.read_parquet(fdir / "image_stats.parquet"), info["heldout_ids"], info["config"])
        sc = pd.read_parquet(run / "interp" / site / fdir.name / explainer / "scores.parquet")
        frames.append(
            st[["feature", "frequency", "n_active_images"]]
            .merge(why[["feature", "reason"]], on="feature")
            .merge(sc[["feature", "explanation", *SCORES, "token_precision", "token_recall"]], on="feature", how="left")
            .assign(replicate=rep, n_images=info["n_explain_images"] + info["n_heldout_images"])
        )
    return pd.concat(frames, ignore_index=True)


def groups(n: int) -> list[tuple[int, int]]:
    """Latent index ranges [a, b) of the Matryoshka kind's default prefixes for `n` latents."""
    edges = [0, *MatryoshkaConfig(n_features=n).prefix_sizes, n]
    return list(zip(edges[:-1], edges[1:]))


def runs_of(df: pd.DataFrame, score: str) -> list[np.ndarray]:
    """The scored latents' `score` per run (a run with none in the group is left out)."""
    runs = [h[score].dropna().to_numpy(float) for _, h in df.groupby("replicate", sort=True)]
    return [r for r in runs if len(r)]


def table(runs: dict[str, Path], dicts: list[str], baseline: str, explainer: str, n_boot: int) -> pd.DataFrame:
    rows = []
    for name, run in runs.items():
        for site in sorted(p.name for p in (run / "features").iterdir() if (p / baseline).is_dir()):
            null = latents(run, site, baseline, explainer)
            for d in [*dicts, baseline]:
                df = latents(run, site, d, explainer)
                n = int(df.groupby("replicate")["feature"].count().iloc[0])
                for a, b in groups(n):
                    g = df[(df["feature"] >= a) & (df["feature"] < b)]
                    row = dict(run=name, site=site, dict=d, latents=f"{a}-{b - 1}", n_latents=len(g))
                    row.update(
                        token_share=g["frequency"].mean(),
                        image_share=(g["n_active_images"] / g["n_images"]).mean(),
                        dense=(g["reason"] == "dense").mean(),
                        rare=(g["reason"] == "rare").mean(),
                        scored=int(g["balanced_accuracy"].notna().sum()),
                        background=g["explanation"].str.startswith("background=").mean(),
                        token_precision=g["token_precision"].mean(),
                        token_recall=g["token_recall"].mean(),
                    )
                    for s in SCORES:
                        est, lo, hi = hierarchical_ci(runs_of(g, s), runs_of(null, s), n_boot=n_boot, seed=0)
                        mean = hierarchical_ci(runs_of(g, s), n_boot=n_boot, seed=0)[0]  # mean of run means
                        row.update({s: mean, f"{s}_vs_null": est, f"{s}_lo": lo, f"{s}_hi": hi})
                    rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, cmd: str, baseline: str) -> str:
    out = [
        "# Matryoshka SAE latents by prefix group: how often they fire, which are scored, how well",
        "",
        f"Command: `{cmd}`",
        "",
        "Latents grouped by the Matryoshka prefixes (for the plain SAE and random directions the groups are",
        "arbitrary index ranges: the control), pooled over each dictionary's 3 runs. `tokens` / `images`: mean",
        "share of tokens / interp images a latent fires on. `dense` / `rare`: share left out by the detection",
        "protocol (too few held-out images without the latent to judge it / too few with it). `scored`: latents",
        "sampled and judged (96 per run at most). `bg`: share explained as a background. Scores: mean over the",
        f"scored latents, then `− {baseline}`: the difference to {baseline} directions' scores over all their",
        "latents, hierarchical 95 % CI (runs, then latents), **bold** where the CI excludes 0. `P` / `R`: the",
        "token question's precision and recall (the latent's active tokens against the explained concept's).",
        "",
        "| run | site | dictionary | latents | tokens | images | dense | rare | scored | bg | "
        + " | ".join(f"{v} | − {baseline}" for v in SCORES.values())
        + " | P | R |",
        "|" + "---|" * (12 + 2 * len(SCORES)),
    ]
    for _, r in df.iterrows():
        cells = [r["run"], r["site"], r["dict"], r["latents"], f"{r['token_share']:.3f}", f"{r['image_share']:.2f}"]
        cells += [f"{r['dense']:.2f}", f"{r['rare']:.2f}", str(r["scored"]), f"{r['background']:.2f}"]
        for s in SCORES:
            diff = f"{r[f'{s}_vs_null']:+.3f} [{r[f'{s}_lo']:+.3f}, {r[f'{s}_hi']:+.3f}]"
            separated = r[f"{s}_lo"] > 0 or r[f"{s}_hi"] < 0
            cells += [f"{r[s]:.3f}", f"**{diff}**" if separated else diff]
        cells += [f"{r['token_precision']:.2f}", f"{r['token_recall']:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, type=run_spec, help="name=results/<model> of finished runs")
    ap.add_argument("--dicts", nargs="+", default=["sae", "matryoshka"])
    ap.add_argument("--baseline", default="random")
    ap.add_argument("--explainer", default="annotation")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--out", required=True, help="path stem: writes <out>.md and <out>.csv")
    a = ap.parse_args(argv)
    runs = dict(a.runs)
    for run in runs.values():
        if not (run / "features").is_dir():
            raise SystemExit(f"{run / 'features'} is missing: run the workflow to its interpretability stage first")
    df = table(runs, a.dicts, a.baseline, a.explainer, a.n_boot)
    cmd = shlex.join([".venv/bin/python", "benchmarks/matryoshka_latents.py", *(argv or sys.argv[1:])])
    out = Path(a.out)
    write_table(out.with_suffix(".csv"), df, float_format="%.4g")
    write_text(out.with_suffix(".md"), markdown(df, cmd, a.baseline))
    print(markdown(df, cmd, a.baseline))


if __name__ == "__main__":
    main()
