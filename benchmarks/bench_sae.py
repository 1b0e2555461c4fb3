"""TopK SAE training side by side: diffdict vs EleutherAI sparsify vs SAELens, on CPU.

Same activations (synthetic with a planted sparse dictionary, or a cached tensor given with
--data; the toy/Flux activation stores can be exported to a .pt tensor for that), same width, k,
batch size, token budget, learning rate and AuxK coefficient; each
library otherwise runs as its own trainer does (sparsify: its `SparseCoder` driven by the
steps of its `Trainer` -- b_dec = first batch mean, unit-norm decoder, parallel-gradient
removal, Adam with linear warm-up/decay; SAELens: its `SAETrainer.fit()` with
`TopKTrainingSAE` and its recommended `expected_average_only_in` normalisation).

FVU on a held-out split: sum ||x - x_hat||^2 / sum ||x - mean_split||^2 (as
`diffdict.metrics.reconstruction`). Throughput: training tokens / wall seconds (and / CPU
seconds of this process, less sensitive to other jobs on a shared machine).

Run in an environment with the peers: `.venv` once `make test` (or `make .venv/.peers`) has installed
requirements-peers.txt, or the separate `.venv-bench` of benchmarks/README.md, which the recorded
commands used:

    .venv-bench/bin/python benchmarks/bench_sae.py            # writes benchmarks/results/bench_sae.{json,md}
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from diffdict.atomic import write_json, write_text  # noqa: E402
from diffdict.devices import describe  # noqa: E402
from diffdict.dictionaries.synthetic import planted  # noqa: E402
from diffdict.dictionaries.train_sae import SAEConfig, geometric_median, train_sae  # noqa: E402


def make_data(args):
    if args.data:
        x = (
            torch.load(args.data).float()
            if args.data.endswith(".pt")
            else torch.from_numpy(__import__("numpy").load(args.data)).float()
        )
        n_test = min(16384, len(x) // 8)
        return x[n_test:], x[:n_test], f"cached activations {args.data}"
    p = planted_world(args)
    desc = (
        f"synthetic planted: d={args.d}, {args.n_atoms} atoms, {args.planted_k // 4}-{args.planted_k} per token, "
        "power-law frequencies, mean norm 50, 4 massive dims (x20), noise 0.1"
    )
    return p.sample(args.train_tokens, 1), p.sample(args.test_tokens, 2), desc


def planted_world(args, n_massive: int = 4):
    """The synthetic data's planted dictionary (its atoms: what a trainer should recover); `n_massive`:
    its massive dimensions (x20)."""
    return planted(
        d=args.d,
        n_atoms=args.n_atoms,
        k=args.planted_k,
        k_min=max(1, args.planted_k // 4),
        noise=0.1,
        mean_norm=50.0,
        n_massive=n_massive,
        alpha=0.7,
        seed=0,
    )


def batches(train, batch_size, epoch):
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
    for a in range(0, len(train) - batch_size + 1, batch_size):
        yield train[perm[a : a + batch_size]]


def endless(train, batch_size):
    epoch = 0
    while True:
        yield from batches(train, batch_size, epoch)
        epoch += 1


def fvu(recon, test):
    x = test.double()
    err = sum(
        float((x[a : a + 4096] - recon(test[a : a + 4096]).double()).pow(2).sum()) for a in range(0, len(x), 4096)
    )
    return err / float((x - x.mean(0)).pow(2).sum())


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def median_step(times, batch):
    """Tokens/s of the median training step: robust to bursts of other jobs on a shared CPU."""
    times = sorted(times)
    return batch / times[len(times) // 2] if times else float("nan")


def diffdict_config(a, normalize="scalar", log_every=1, **settings) -> SAEConfig:
    """diffdict's SAE settings for the benchmark's width, k, batch, tokens, lr and dead threshold;
    ``settings`` override any of them."""
    base = dict(
        n_features=a.width,
        k=a.k,
        batch_size=a.batch,
        tokens=a.tokens,
        lr=a.lr,
        lr_warmup_steps=50,
        auxk_coef=1 / 32,
        dead_tokens=a.dead_tokens,
        init_tokens=a.batch * 4,
        log_every=log_every,
        normalize=normalize,
    )
    return SAEConfig(**base | settings)


def run_diffdict(train, test, a, normalize="scalar", **settings):
    cfg = diffdict_config(a, normalize, **settings)
    steps = []  # log_every=1: the log row's tokens_per_s covers exactly one step
    cb = lambda step, row: steps.append(a.batch / row["tokens_per_s"])  # noqa: E731
    sae, wall, cpu = timed(
        lambda: train_sae(lambda e: batches(train, 4096, e), train.shape[1], cfg, progress=False, callback=cb)
    )
    with torch.no_grad():
        return {
            "fvu": fvu(sae, test),
            "wall_s": wall,
            "cpu_s": cpu,
            "median_step_tokens_per_s": median_step(steps, a.batch),
        }


def train_sparsify(train, a, step_times=None, rows=None, b_dec_median=False, auxk=True, init=None, lr_lambda=None):
    """sparsify's `SparseCoder`, trained by the steps of its `Trainer` (``step_times``: appended per step).
    ``rows``: appended every 32 steps, like diffdict's train_log (step, mean training FVU since the last
    row, fraction of latents dead by its AuxK's count). ``b_dec_median``: b_dec starts at the first batch's
    geometric median (diffdict's init) rather than its mean. ``auxk=False``: no AuxK loss.
    ``init``: called on the new SparseCoder (no grad) to replace its initial weights; ``lr_lambda``: the
    learning rate's factor at each step instead of its warm-up/decay schedule."""
    from sparsify import SparseCoder, SparseCoderConfig
    from transformers import get_linear_schedule_with_warmup

    d = train.shape[1]
    sae = SparseCoder(d, SparseCoderConfig(num_latents=a.width, k=a.k))
    if init is not None:
        with torch.no_grad():
            init(sae)
    opt = torch.optim.Adam(sae.parameters(), lr=a.lr)
    steps = a.tokens // a.batch
    sched = (
        get_linear_schedule_with_warmup(opt, 50, steps)
        if lr_lambda is None
        else torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    )
    since = torch.zeros(a.width, dtype=torch.long)
    data = endless(train, a.batch)
    window = []
    for step in range(steps):
        x = next(data)
        t0 = time.perf_counter()
        if step == 0:
            sae.b_dec.data = geometric_median(x).float() if b_dec_median else x.mean(0)
        sae.set_decoder_norm_to_unit_norm()
        out = sae(x, dead_mask=since > a.dead_tokens if auxk else None)
        (out.fvu + out.auxk_loss / 32).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        sched.step()
        with torch.no_grad():
            since += len(x)
            since[out.latent_indices.flatten()] = 0
        if step_times is not None:
            step_times.append(time.perf_counter() - t0)
        if rows is not None:
            window.append(float(out.fvu))
            if (step + 1) % 32 == 0:
                dead = float((since > a.dead_tokens).float().mean())
                rows.append({"step": step + 1, "fvu": sum(window) / len(window), "dead_fraction": dead})
                window = []
    return sae


def run_sparsify(train, test, a):
    step_times = []
    sae, wall, cpu = timed(lambda: train_sparsify(train, a, step_times))
    with torch.no_grad():
        return {
            "fvu": fvu(lambda x: sae(x).sae_out, test),
            "wall_s": wall,
            "cpu_s": cpu,
            "median_step_tokens_per_s": median_step(step_times, a.batch),
        }


def saelens_config(cls, train, a, **settings):
    """A SAELens training config (``cls``) for the benchmark's width, k and AuxK coefficient, with SAELens'
    recommended normalisation; ``settings`` add to it."""
    return cls(
        d_in=train.shape[1],
        d_sae=a.width,
        k=a.k,
        aux_loss_coefficient=1 / 32,
        dtype="float32",
        device="cpu",
        normalize_activations="expected_average_only_in",
        **settings,
    )


def fit_saelens(sae, train, a, step_times):
    """SAELens' own `SAETrainer.fit()` on `sae` with the benchmark's tokens, batch, lr schedule and dead
    window; each step's seconds appended to ``step_times``."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    tcfg = SAETrainerConfig(
        total_training_samples=a.tokens,
        train_batch_size_samples=a.batch,
        lr=a.lr,
        lr_warm_up_steps=50,
        lr_decay_steps=a.tokens // a.batch // 5,
        lr_end=0.0,
        device="cpu",
        dead_feature_window=max(1, a.dead_tokens // a.batch),
        n_batches_for_norm_estimate=4,
    )
    trainer = SAETrainer(tcfg, sae, endless(train, a.batch))
    step = trainer.step

    def timed_step(batch):
        t0 = time.perf_counter()
        out = step(batch)
        step_times.append(time.perf_counter() - t0)
        return out

    trainer.step = timed_step
    return trainer.fit()


def run_saelens(train, test, a, sparse_acts=False):
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    step_times = []
    cfg = saelens_config(TopKTrainingSAEConfig, train, a, use_sparse_activations=sparse_acts)
    sae, wall, cpu = timed(lambda: fit_saelens(TopKTrainingSAE(cfg), train, a, step_times))
    sae.eval()
    with torch.no_grad():
        return {
            "fvu": fvu(lambda x: sae(x), test),
            "wall_s": wall,
            "cpu_s": cpu,
            "median_step_tokens_per_s": median_step(step_times, a.batch),
        }


def header(title: str, report: dict) -> list[str]:
    """A record's title, command, data, setup, versions and CPU lines (then its table)."""
    setup = ", ".join(f"{k}={v}" for k, v in report["setup"].items())
    return [
        f"# {title} ({report['date']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Data: {report['data']}",
        "",
        f"Setup: {setup}; torch threads={report['threads']}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
        f"CPU: {report['cpu']}",
        "",
    ]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--n-atoms", type=int, default=2048)
    ap.add_argument("--planted-k", type=int, default=16)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=2**18)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dead-tokens", type=int, default=50_000)
    ap.add_argument("--train-tokens", type=int, default=2**17)
    ap.add_argument("--test-tokens", type=int, default=2**14)
    ap.add_argument("--data", help=".pt or .npy tensor [N, d] of cached activations")
    ap.add_argument(
        "--only",
        nargs="*",
        default=[
            "diffdict",
            "sparsify",
            "saelens",
            "diffdict_robust",
            "diffdict_dim",
            "diffdict_enc577",
            "diffdict_normal",
            "diffdict_auxk_all",
        ],
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every trainer this many times, interleaved; report the median run and the median "
        "of the per-round speed-ups (robust to slow drift in a shared machine's speed)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/bench_sae"))
    return ap


def main():
    a = parser().parse_args()
    torch.manual_seed(0)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # pay the one-off torch._dynamo import before timing
    train, test, desc = make_data(a)
    a.d = train.shape[1]
    results, versions = {}, {"torch": torch.__version__, "python": platform.python_version()}
    # diffdict: normalize=scalar, the same objective as the peers' (model-space FVU);
    # diffdict_robust: the default; diffdict_dim: per-dimension standardisation (the paper's choice);
    # diffdict_enc577: encoder rows initialised at sparsify's scale (nn.Linear's uniform init: norm ~ 1/sqrt(3));
    # diffdict_normal: Gaussian initial rows, the default until 2026-12-05;
    # diffdict_auxk_all: AuxK's gradient reaches b_dec too, the default until 2026-12-06
    runners = {
        "diffdict": run_diffdict,
        "sparsify": run_sparsify,
        "saelens": run_saelens,
        "diffdict_robust": lambda tr, te, a: run_diffdict(tr, te, a, normalize="robust"),
        "diffdict_dim": lambda tr, te, a: run_diffdict(tr, te, a, normalize="dim"),
        "diffdict_enc577": lambda tr, te, a: run_diffdict(tr, te, a, encoder_init_norm=3**-0.5),
        "diffdict_normal": lambda tr, te, a: run_diffdict(tr, te, a, init_distribution="normal"),
        "diffdict_auxk_all": lambda tr, te, a: run_diffdict(tr, te, a, auxk_grad="all"),
    }
    runs = {name: [] for name in a.only}
    for rnd in range(a.rounds):
        for name in a.only:
            try:
                r = runners[name](train, test, a)
                r["tokens_per_s"] = a.tokens / r["wall_s"]
                r["tokens_per_cpu_s"] = a.tokens / r["cpu_s"]
            except Exception as e:  # record why a peer could not run
                r = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=3)}
            runs[name].append(r)
            print(f"round {rnd}", name, json.dumps({k: v for k, v in r.items() if k != "traceback"}), flush=True)
    for name, rs in runs.items():  # the median run by wall time, with every round's wall time (None: failed)
        ok = sorted((r for r in rs if "wall_s" in r), key=lambda r: r["wall_s"])
        results[name] = dict(ok[len(ok) // 2], wall_s_runs=[r.get("wall_s") for r in rs]) if ok else rs[0]
    for pkg in ("eai-sparsify", "sae-lens"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception as e:
            versions[pkg] = f"not installed ({e})"
    ours = results.get("diffdict", {})
    peers = {k: v for k, v in results.items() if not k.startswith("diffdict") and "tokens_per_s" in v}
    summary = {}
    if "tokens_per_s" in ours and peers:
        fastest = max(peers, key=lambda k: peers[k]["tokens_per_s"])
        # same-round ratios: both trainers ran back to back, so drift in machine speed cancels
        per_round = {
            k: [p / o for o, p in zip(ours["wall_s_runs"], v["wall_s_runs"]) if o and p] for k, v in peers.items()
        }
        summary = {
            "fastest_peer": fastest,
            "speedup_vs_fastest_peer": statistics.median(per_round[fastest]),
            "speedup_per_round": per_round[fastest],
            "median_step_speedup_vs_fastest_peer": ours["median_step_tokens_per_s"]
            / peers[fastest]["median_step_tokens_per_s"],
            "cpu_speedup_vs_fastest_peer": ours["tokens_per_cpu_s"] / peers[fastest]["tokens_per_cpu_s"],
            "fvu_minus_fastest_peer": ours["fvu"] - peers[fastest]["fvu"],
            **{f"speedup_vs_{k}": statistics.median(r) for k, r in per_round.items()},
            "target_met": statistics.median(per_round[fastest]) >= 1.5
            and ours["fvu"] <= min(v["fvu"] for v in peers.values()) + 1e-3,
        }
    cmd = "python " + " ".join(
        [
            Path(sys.argv[0]).relative_to(ROOT).as_posix() if Path(sys.argv[0]).is_absolute() else sys.argv[0],
            *sys.argv[1:],
        ]
    )
    setup = {
        k: getattr(a, k)
        for k in ("d", "width", "k", "batch", "tokens", "lr", "dead_tokens", "train_tokens", "test_tokens", "rounds")
    }
    report = {
        "command": ".venv-bench/bin/" + cmd,
        "data": desc,
        "setup": setup,
        "versions": versions,
        "cpu": describe("cpu"),
        "threads": torch.get_num_threads(),
        "results": results,
        "summary": summary,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    write_json(a.out + ".json", report)
    lines = [
        *header("bench_sae — TopK SAE training on CPU", report),
        "| trainer | held-out FVU | wall s (each round) | tokens/s (median run) | tokens/s (median step) "
        "| tokens/CPU-s |",
        "|---|---|---|---|---|---|",
    ]
    for k, r in results.items():
        if "error" in r:
            lines.append(f"| {k} | failed: {r['error']} | | | | |")
        else:
            walls = " / ".join("failed" if w is None else f"{w:.1f}" for w in r["wall_s_runs"])
            lines.append(
                f"| {k} | {r['fvu']:.4f} | {walls} | {r['tokens_per_s']:,.0f} | "
                f"{r['median_step_tokens_per_s']:,.0f} | {r['tokens_per_cpu_s']:,.0f} |"
            )
    if summary:

        def fmt(v):
            return (
                f"{v:.3f}"
                if isinstance(v, float)
                else "[" + ", ".join(map(fmt, v)) + "]"
                if isinstance(v, list)
                else str(v)
            )

        lines += ["", "Summary: " + ", ".join(f"{k}={fmt(v)}" for k, v in summary.items())]
    lines += [
        "",
        "diffdict: `normalize: scalar` (the peers' objective, model-space FVU); diffdict_robust: the default "
        "`normalize: robust` (scalar after shrinking outlier dimensions: here the 4 massive ones); diffdict_dim: "
        "`normalize: dim` (per-dimension standardisation, the paper's choice; trades model-space FVU for "
        "recovery of features under massive dimensions, see train_sae.py); diffdict_enc577: `normalize: scalar` "
        "with `encoder_init_norm: 0.577`, the encoder's initial rows at the norm sparsify's nn.Linear init gives "
        "them (diffdict's default ties them to the unit decoder rows); diffdict_normal: `normalize: scalar` with "
        "`init_distribution: normal`, Gaussian initial rows (the default until 2026-12-05; diffdict's rows are "
        "now uniform on [-1, 1] before normalising, like nn.Linear's); diffdict_auxk_all: `normalize: scalar` "
        "with `auxk_grad: all`, AuxK's gradient reaching b_dec too (the default until 2026-12-06; diffdict's now "
        "trains the dead latents' own parameters only, benchmarks/results/auxk_grad.md). Speed-ups compare "
        "diffdict with the fastest peer. The planted atoms no longer coincide with a seed-0 SAE's initial decoder "
        "(`synthetic.ATOM_SALT`); until 2026-12-05 they did, and diffdict's FVU read 0.027.",
        "",
        "Wall-clock numbers on the shared 2-core machine carry noise from any other job; "
        "'median step' is the least sensitive column.",
    ]
    write_text(a.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
