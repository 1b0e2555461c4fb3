"""Why BatchTopK loses on bench_sae's synthetic data but wins on the toy: the same two trainers
(diffdict's default TopK SAE and `batch_topk: true`) on bench_sae's planted data with and without its
four massive dimensions (x20), at bench_sae's default length or its long one (`--tokens`). Per run:
held-out FVU, the FVU of the ordinary (not massive) dimensions alone, active latents per held-out
token, and how they follow the token: the rank correlation of a token's active-latent count with the
size of its massive dimensions (after centring) and with the size of its other dimensions.

    .venv/bin/python benchmarks/batch_topk_synthetic.py --seeds 0 1 \\
        --out benchmarks/results/batch_topk_synthetic
    .venv/bin/python benchmarks/batch_topk_synthetic.py --seeds 0 --massive 0 --tokens 2097152 \\
        --out benchmarks/results/batch_topk_synthetic_long

`--trainers` adds BatchTopK with its threshold calibrated after training (`batch_topk_threshold:
calibrated`), for `batch_topk_threshold.md`:

    .venv/bin/python benchmarks/batch_topk_synthetic.py --seeds 0 1 --trainers all \\
        --out benchmarks/results/batch_topk_threshold
    .venv/bin/python benchmarks/batch_topk_synthetic.py --seeds 0 --massive 0 --tokens 2097152 --trainers all \\
        --out benchmarks/results/batch_topk_threshold_long
"""

from __future__ import annotations

import argparse
import shlex
import sys

import pandas as pd
import torch
from bench_sae import batches, diffdict_config, parser, planted_world

from diffdict.atomic import write_table, write_text
from diffdict.dictionaries.train_sae import train_sae

TRAINERS = {
    "topk (default)": {},
    "batch_topk": {"batch_topk": True},
    "batch_topk calibrated": {"batch_topk": True, "batch_topk_threshold": "calibrated"},
}
FIRST = ("topk (default)", "batch_topk")  # the trainers of the first records
# `--trainers all`: fixed at 13:13 UTC on 2026-12-06, before the first run with the calibrated threshold
QUESTION = (
    "Question and rule, fixed before the run: (a) with its threshold calibrated after training, BatchTopK keeps "
    "k = 32 +- 5 % active latents per held-out token in every run at bench_sae's length (the moving average: "
    "19.8 / 20.4 in batch_topk_synthetic.md); (b) at that matched sparsity, does BatchTopK reach a lower held-out "
    "FVU than TopK, as Bussmann et al. report on LLMs? Predicted: no on this data (at the long length, at 32.5 "
    "active, it did not: 0.142 against 0.105); (c) at the long length the two thresholds' FVUs lie within 0.01. "
    "The default stays moving_average whatever the result (moving it would enter every SAE's params and retrain "
    "the default run); if (a) holds, the README recommends calibrated for short runs."
)


def data(a, n_massive: int):
    """bench_sae's planted data (`bench_sae.planted_world`) with `n_massive` massive dimensions."""
    p = planted_world(a, n_massive)
    return p.sample(a.train_tokens, 1), p.sample(a.test_tokens, 2), p.massive > 1


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(pd.Series(a.double().numpy()).corr(pd.Series(b.double().numpy()), method="spearman"))


def measure(a, seed: int, n_massive: int, name: str) -> dict:
    train, test, massive = data(a, n_massive)
    cfg = diffdict_config(a, seed=seed, log_every=64, **TRAINERS[name])
    sae = train_sae(lambda e: batches(train, 4096, e), train.shape[1], cfg, progress=False)
    with torch.no_grad():
        codes = sae.encode(test)
        err = (test - sae.decode(codes)).double()
    centred = (test - test.mean(0)).double()
    l0 = (codes.values > 0).sum(1)
    ordinary = ~massive
    return {
        "massive_dims": n_massive,
        "trainer": name,
        "seed": seed,
        "fvu": float(err.pow(2).sum() / centred.pow(2).sum()),
        "fvu_ordinary_dims": float(err[:, ordinary].pow(2).sum() / centred[:, ordinary].pow(2).sum()),
        "l0": float(l0.float().mean()),
        "l0_p10": float(l0.float().quantile(0.1)),
        "l0_p90": float(l0.float().quantile(0.9)),
        "rho_l0_massive": spearman(l0, centred[:, massive].norm(dim=1)) if n_massive else float("nan"),
        "rho_l0_ordinary": spearman(l0, centred[:, ordinary].norm(dim=1)),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--massive", nargs="+", type=int, default=[4, 0], help="massive dimensions (bench_sae's: 4)")
    ap.add_argument("--tokens", type=int, default=2**18, help="training tokens (bench_sae's default; long: 2097152)")
    ap.add_argument("--trainers", choices=["first", "all"], default="first", help="first: TopK and BatchTopK")
    ap.add_argument("--out", required=True, help="path stem: writes <out>.md and <out>.csv")
    o = ap.parse_args(argv)
    a = parser().parse_args(["--tokens", str(o.tokens)])
    names = FIRST if o.trainers == "first" else tuple(TRAINERS)
    rows = [measure(a, seed, n, name) for n in o.massive for seed in o.seeds for name in names]
    df = pd.DataFrame(rows)
    write_table(f"{o.out}.csv", df)
    means = df.drop(columns="seed").groupby(["massive_dims", "trainer"], sort=False).mean().reset_index()
    cmd = ".venv/bin/python benchmarks/batch_topk_synthetic.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = [
        "# BatchTopK on bench_sae's synthetic data, with and without its massive dimensions",
        "",
        f"Command: `{cmd}`",
        "",
        f"bench_sae's data and trainer settings (d {a.d}, {a.n_atoms} planted atoms, "
        f"{a.planted_k // 4}-{a.planted_k} per token, "
        f"width {a.width}, k {a.k}, {a.tokens:,} tokens, `normalize: scalar`), diffdict's default trainer with and "
        f"without `batch_topk`; massive dimensions: 4 (bench_sae's data, x20) or none. Mean over seeds {o.seeds} "
        "(each run in the .csv). `fvu_ordinary_dims`: the FVU of the dimensions that are not massive; `l0`: active "
        "latents per held-out token (p10 / p90 its spread); `rho_*`: Spearman correlation of a token's active-latent "
        "count with the norm of its centred massive / other dimensions.",
        "",
        means.to_markdown(index=False, floatfmt=".4f"),
        "",
    ]
    if o.trainers == "all":
        text[4:4] = ["`batch_topk calibrated`: `batch_topk_threshold: calibrated`. " + QUESTION, ""]
    write_text(f"{o.out}.md", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
