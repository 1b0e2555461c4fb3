"""SAE training on a GPU: the sparse kernels' agreement with the CPU, and throughput at the Flux configs' size.

1. Agreement: one `sae_loss` forward and backward of the same small SAE on the same batch, in float64, on the
   device and on the CPU (TopK and BatchTopK, AuxK on). The device takes paths the CPU does not: the
   sorted-column SDDMM (`kernels._gather_dot`), CUDA's top-k and ragged `embedding_bag`; loss and gradients must
   agree (relative error below 1e-9).
2. Throughput: `train_sae` as the workflow runs it (bf16 autocast on CUDA) on planted tokens at the Flux configs'
   SAE size (d 3072, 65,536 latents, k 64, batch 1,024: config/flux-schnell.yaml), TopK beside BatchTopK:
   tokens/s of the median step and peak memory.

    python benchmarks/gpu_sae.py                  # writes benchmarks/results/gpu_sae.{json,md}

Exits 0 and records "not run" where the device is missing. `--device cpu --d 256 --width 4096 --k 32
--out /tmp/gpu_sae` runs the same code on the CPU at bench_sae's size (a smoke run of the script).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from diffdict.atomic import write_json, write_text
from diffdict.devices import describe
from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.synthetic import planted
from diffdict.dictionaries.train_sae import SAEConfig, sae_loss, train_sae

RESULTS = Path(__file__).parent / "results"


def agreement(device: str, batch_topk: bool, seed: int = 0) -> dict:
    """Loss and gradients of one float64 step on `device` against the CPU's: the largest relative error."""
    d, n, k, batch = 64, 2048, 8, 512
    cfg = SAEConfig(n_features=n, k=k, batch_topk=batch_topk, k_aux=64)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, d, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, batch)[:, None].double()
    dead = torch.arange(n) % 5 == 0  # AuxK has dead latents to use
    out = {}
    for dev in ("cpu", device):
        sae = TopKSAE(d, n, k, batch_topk)
        sae.init_weights(torch.zeros(d), torch.Generator().manual_seed(seed))
        sae = sae.double().to(dev).train()
        loss, fvu, auxk, _, _ = sae_loss(sae, x.to(dev), dead.to(dev), cfg)
        loss.backward()
        out[dev] = {"loss": loss.detach().cpu()} | {name: p.grad.cpu() for name, p in sae.named_parameters()}
    ref, got = out["cpu"], out[device]
    errors = {key: float((got[key] - ref[key]).abs().max() / ref[key].abs().max().clamp_min(1e-300)) for key in ref}
    return {"batch_topk": batch_topk, "max_relative_error": max(errors.values()), "errors": errors}


def throughput(device: str, a, batch_topk: bool) -> dict:
    """tokens/s of the median training step and peak device memory, training as the workflow does."""
    # bench_sae's kind of data (power-law atoms, 4 massive dimensions) at the device's width; 4,096 atoms keep
    # drawing the tokens on the host quick
    world = planted(d=a.d, n_atoms=4096, k=a.k, mean_norm=50.0, n_massive=4, seed=0, k_min=a.k // 4)
    cfg = SAEConfig(
        n_features=a.width,
        k=a.k,
        batch_size=a.batch,
        tokens=a.tokens,
        batch_topk=batch_topk,
        init_tokens=4 * a.batch,
        log_every=1,
    )
    steps = []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    train_sae(
        world.factory(a.data_tokens, batch=8192),
        a.d,
        cfg,
        device=device,
        progress=False,
        callback=lambda step, row: steps.append(a.batch / row["tokens_per_s"]),
    )
    steps = sorted(steps[len(steps) // 10 :])  # past the first tenth: warm-up, allocator, autotuning
    return {
        "batch_topk": batch_topk,
        "median_step_tokens_per_s": a.batch / steps[len(steps) // 2],
        "peak_GiB": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--d", type=int, default=3072)
    ap.add_argument("--width", type=int, default=65536)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=1024 * 400, help="training tokens per run")
    ap.add_argument("--data-tokens", type=int, default=32768, help="distinct planted tokens (reshuffled per epoch)")
    ap.add_argument("--out", default=str(RESULTS / "gpu_sae"))
    a = ap.parse_args(argv)
    command = shlex.join(["python", "benchmarks/gpu_sae.py", *(sys.argv[1:] if argv is None else argv)])
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_sae: CUDA not available, skipped")
        write_json(a.out + ".json", {"command": command, "skipped": "no CUDA"}, sort_keys=False)
        write_text(
            a.out + ".md",
            f"# SAE training on a GPU\n\nNot run yet: `{command}` found no CUDA device (it exits 0 and records "
            "this). Run it on a GPU machine to check the sparse kernels against the CPU there and to measure "
            "TopK and BatchTopK training at the Flux configs' SAE size.\n",
        )
        return 0
    name = describe(a.device)
    res = {"command": command, "device": name, "torch": torch.__version__}
    res["agreement"] = [agreement(a.device, bt) for bt in (False, True)]
    print(json.dumps(res["agreement"]))
    res["setup"] = {k: getattr(a, k) for k in ("d", "width", "k", "batch", "tokens", "data_tokens")}
    res["throughput"] = [throughput(a.device, a, bt) for bt in (False, True)]
    print(json.dumps(res["throughput"]))
    write_json(a.out + ".json", res, sort_keys=False)
    setup = ", ".join(f"{k}={v}" for k, v in res["setup"].items())
    md = [
        "# SAE training on a GPU",
        "",
        f"Command: `{command}` on {name} (torch {torch.__version__})",
        "",
        "Agreement with the CPU (one float64 step, same SAE and batch; largest relative error of loss and "
        "gradients): "
        + ", ".join(
            f"{'BatchTopK' if r['batch_topk'] else 'TopK'} {r['max_relative_error']:.1e}" for r in res["agreement"]
        ),
        "",
        f"Training ({setup}; planted tokens, bf16 autocast on CUDA):",
        "",
        "| SAE | tokens/s (median step) | peak GiB |",
        "|---|---|---|",
    ]
    for r in res["throughput"]:
        peak = "-" if r["peak_GiB"] is None else f"{r['peak_GiB']:.1f}"
        md.append(f"| {'BatchTopK' if r['batch_topk'] else 'TopK'} | {r['median_step_tokens_per_s']:,.0f} | {peak} |")
    write_text(a.out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))
    bad = [r for r in res["agreement"] if not r["max_relative_error"] < 1e-9]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
