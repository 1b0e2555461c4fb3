"""BatchTopK SAE training side by side: diffdict (`batch_topk: true`) vs SAELens' `BatchTopKTrainingSAE`, on CPU.

bench_sae.py's data, width, k, batch, token budget, learning rate and AuxK coefficient; each trainer as it
runs by itself (diffdict: `train_sae` with `normalize: scalar`, the peers' objective; SAELens: `SAETrainer.fit()`
with its recommended `expected_average_only_in` normalisation). Both keep the batch's k x B largest activations
in training and learn a threshold (a moving average of the smallest kept activation, rate 0.01 in both); both
are scored as they infer, by that threshold: diffdict's `encode`, and SAELens' own inference model
(`save_inference_model`, a JumpReLU, read back with `SAE.load_from_disk`). Reported beside FVU: the mean active
latents per held-out token (the threshold lags on a run this short, so it is not k). Third, in the same rounds:
diffdict's TopK SAE on the same settings (`speed_vs_topk`: what the batch selection costs). Fourth, diffdict's
BatchTopK with `batch_topk_threshold: calibrated` (the threshold set once trained so that k are active per token),
which scores BatchTopK at the sparsity asked for, beside TopK's.

    .venv-bench/bin/python benchmarks/bench_batch_topk.py --rounds 3   # writes benchmarks/results/bench_batch_topk.*
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sae import (  # noqa: E402
    ROOT,
    batches,
    diffdict_config,
    fit_saelens,
    fvu,
    header,
    make_data,
    median_step,
    parser,
    saelens_config,
    timed,
)

from diffdict.atomic import write_json, write_text  # noqa: E402
from diffdict.devices import describe  # noqa: E402
from diffdict.dictionaries.train_sae import train_sae  # noqa: E402


def active(encode, test) -> float:
    """Mean number of latents active per held-out token."""
    return float(sum(int((encode(test[a : a + 4096]) > 0).sum()) for a in range(0, len(test), 4096)) / len(test))


def run_diffdict(train, test, a, **settings):
    steps = []
    cb = lambda step, row: steps.append(a.batch / row["tokens_per_s"])  # noqa: E731
    cfg = diffdict_config(a, **settings)
    sae, wall, cpu_s = timed(
        lambda: train_sae(lambda e: batches(train, 4096, e), train.shape[1], cfg, progress=False, callback=cb)
    )
    with torch.no_grad():
        return {
            "fvu": fvu(lambda x: sae.decode(sae.encode(x)), test),
            "active": active(lambda x: sae.encode(x).values, test),
            "wall_s": wall,
            "cpu_s": cpu_s,
            "median_step_tokens_per_s": median_step(steps, a.batch),
        }


def run_saelens(train, test, a):
    from sae_lens import SAE
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

    step_times = []
    cfg = saelens_config(BatchTopKTrainingSAEConfig, train, a)
    sae, wall, cpu_s = timed(lambda: fit_saelens(BatchTopKTrainingSAE(cfg), train, a, step_times))
    with tempfile.TemporaryDirectory() as tmp:  # SAELens' inference model: the JumpReLU it saves
        sae.save_inference_model(tmp)
        inference = SAE.load_from_disk(tmp).eval()
    with torch.no_grad():
        return {
            "fvu": fvu(lambda x: inference(x), test),
            "active": active(inference.encode, test),
            "wall_s": wall,
            "cpu_s": cpu_s,
            "median_step_tokens_per_s": median_step(step_times, a.batch),
        }


def main():
    ap = parser()
    ap.set_defaults(
        only=["diffdict_batch_topk", "saelens_batch_topk", "diffdict_topk", "diffdict_batch_topk_calibrated"],
        out=str(ROOT / "benchmarks/results/bench_batch_topk"),
    )
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # pay the one-off torch._dynamo import before timing
    train, test, desc = make_data(a)
    runners = {
        "diffdict_batch_topk": lambda train, test, a: run_diffdict(train, test, a, batch_topk=True),
        "saelens_batch_topk": run_saelens,
        "diffdict_topk": lambda train, test, a: run_diffdict(train, test, a),
        "diffdict_batch_topk_calibrated": lambda train, test, a: run_diffdict(
            train, test, a, batch_topk=True, batch_topk_threshold="calibrated"
        ),
    }
    runs = {name: [] for name in a.only}
    for rnd in range(a.rounds):  # interleaved: drift in a shared machine's speed hits both
        for name in a.only:
            runs[name].append(runners[name](train, test, a))
            print(f"round {rnd}", name, runs[name][-1], flush=True)
    results = {}
    for name, rs in runs.items():
        median = sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
        results[name] = dict(median, wall_s_runs=[r["wall_s"] for r in rs], tokens_per_s=a.tokens / median["wall_s"])
    ours, theirs = (results.get(n) for n in ("diffdict_batch_topk", "saelens_batch_topk"))
    summary = {}
    if ours and theirs:
        per_round = [t / o for o, t in zip(ours["wall_s_runs"], theirs["wall_s_runs"])]
        summary = {
            "speedup_vs_saelens": statistics.median(per_round),
            "speedup_per_round": per_round,
            "median_step_speedup": ours["median_step_tokens_per_s"] / theirs["median_step_tokens_per_s"],
            "fvu_minus_saelens": ours["fvu"] - theirs["fvu"],
        }
    if ours and (topk := results.get("diffdict_topk")):  # what the batch selection costs, same run
        summary["speed_vs_topk"] = statistics.median([t / o for o, t in zip(ours["wall_s_runs"], topk["wall_s_runs"])])
    from importlib.metadata import version

    versions = {"torch": torch.__version__, "python": platform.python_version(), "sae-lens": version("sae-lens")}
    setup = {k: getattr(a, k) for k in ("d", "width", "k", "batch", "tokens", "lr", "dead_tokens", "rounds")}
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = ".venv-bench/bin/python benchmarks/bench_batch_topk.py " + " ".join(sys.argv[1:])
    report = {"command": command.strip(), "data": desc, "setup": setup, "versions": versions, "cpu": describe("cpu")}
    report |= {"threads": torch.get_num_threads(), "results": results, "summary": summary, "date": date}
    write_json(a.out + ".json", report)
    lines = [
        *header("bench_batch_topk — BatchTopK SAE training on CPU", report),
        "| trainer | held-out FVU (as it infers) | active latents per held-out token | wall s (each round) "
        "| tokens/s (median run) | tokens/s (median step) |",
        "|---|---|---|---|---|---|",
    ]
    for k, r in results.items():
        walls = " / ".join(f"{w:.1f}" for w in r["wall_s_runs"])
        lines.append(
            f"| {k} | {r['fvu']:.4f} | {r['active']:.1f} | {walls} | {r['tokens_per_s']:,.0f} "
            f"| {r['median_step_tokens_per_s']:,.0f} |"
        )
    if summary:
        lines += [
            "",
            "Summary: "
            + ", ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={[round(x, 3) for x in v]}"
                for k, v in summary.items()
            ),
        ]
    write_text(a.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
