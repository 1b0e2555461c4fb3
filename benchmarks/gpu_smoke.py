"""GPU smoke benchmark: a random-initialised FLUX.1-size transformer in bf16 and NF4.

FLUX.1 geometry (19 double + 38 single blocks, 24 heads x 128 = 3072 dims, T5 dim 4096,
pooled 768) with random weights, so no download is needed. For each precision it reports
peak GPU memory, seconds per denoising step (one transformer call, batch 1) at 256^2 and
512^2, and capture overhead: a replay stopped after double block 18 (the paper's site) and a
full step with a recording hook, relative to a plain step.

    python benchmarks/gpu_smoke.py [--precisions bf16 nf4] [--text-tokens 256] [--repeats 5]

Exits 0 with a "skipped" result when CUDA is unavailable. Writes
benchmarks/results/gpu_smoke.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from diffdict.atomic import write_json, write_text

RESULTS = Path(__file__).parent / "results"


def command_line(argv) -> str:
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{Path(__file__).name}", *args])


FLUX1 = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=False,
    axes_dims_rope=(16, 56, 56),
)


def build(precision: str, device):
    from diffusers import FluxTransformer2DModel

    from diffdict.model.nf4 import quantize_nf4

    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # initialise straight in bf16 on the GPU (24 GB, not 48)
    try:
        with torch.device(device):
            m = FluxTransformer2DModel(**FLUX1)
    finally:
        torch.set_default_dtype(prev)
    if precision == "nf4":
        quantize_nf4(m, torch.bfloat16, device)  # frees each bf16 weight as it is replaced
    torch.cuda.empty_cache()
    return m.eval().requires_grad_(False)


def inputs(side: int, text_tokens: int, device):
    from diffusers import FluxPipeline

    g = side // 16
    return dict(
        hidden_states=torch.randn(1, g * g, 64, device=device, dtype=torch.bfloat16),
        encoder_hidden_states=torch.randn(1, text_tokens, 4096, device=device, dtype=torch.bfloat16),
        pooled_projections=torch.randn(1, 768, device=device, dtype=torch.bfloat16),
        timestep=torch.full((1,), 0.9, device=device, dtype=torch.bfloat16),
        img_ids=FluxPipeline._prepare_latent_image_ids(None, g, g, device, torch.bfloat16),
        txt_ids=torch.zeros(text_tokens, 3, device=device, dtype=torch.bfloat16),
        return_dict=False,
    )


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def measure(m, x: dict, site, repeats: int) -> dict:
    """Plain step, replay stopped after `site`, and a full step with a recording hook."""
    from diffdict.model import record_site, run_to_site

    def hooked():
        with record_site(m, site):
            m(**x)

    with torch.no_grad():
        step = timed(lambda: m(**x), repeats)
        replay = timed(lambda: run_to_site(m, site, x), repeats)
        rec = timed(hooked, repeats)
    return {
        "s_per_step": step,
        "replay_to_double18_s": replay,
        "replay_fraction": replay / step,
        "expected_fraction": (site.depth(len(m.transformer_blocks)) + 1)
        / (len(m.transformer_blocks) + len(m.single_transformer_blocks)),
        "recording_step_s": rec,
        "recording_overhead": rec / step - 1,
    }


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--precisions", nargs="+", default=["bf16", "nf4"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--text-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    command = command_line(argv)
    if not torch.cuda.is_available():
        print("gpu_smoke: CUDA not available, skipped")
        write_json(RESULTS / "gpu_smoke.json", {"command": command, "skipped": "no CUDA"}, sort_keys=False)
        write_text(
            RESULTS / "gpu_smoke.md",
            f"# GPU smoke: random FLUX.1-size transformer\n\nNot run yet: `{command}` found no CUDA device "
            "(it exits 0 and records this). Run it on a GPU machine to fill in peak memory, s/step and "
            "capture overhead for bf16 and NF4.\n",
        )
        return 0
    from diffdict.sites import Site

    device = torch.device("cuda")
    site = Site("double18_img", "double", 18)
    out = {"command": command, "device": torch.cuda.get_device_name(), "text_tokens": a.text_tokens, "runs": []}
    for precision in a.precisions:
        torch.cuda.reset_peak_memory_stats()
        m = build(precision, device)
        weights_gib = torch.cuda.memory_allocated() / 2**30
        for side in a.sizes:
            torch.cuda.reset_peak_memory_stats()
            run = measure(m, inputs(side, a.text_tokens, device), site, a.repeats)
            run.update(
                precision=precision,
                size=side,
                image_tokens=(side // 16) ** 2,
                weights_GiB=weights_gib,
                peak_GiB=torch.cuda.max_memory_allocated() / 2**30,
            )
            out["runs"].append(run)
            print(json.dumps(run))
        del m
        torch.cuda.empty_cache()
    write_json(RESULTS / "gpu_smoke.json", out, sort_keys=False)
    md = [
        "# GPU smoke: random FLUX.1-size transformer",
        "",
        f"Command: `{command}` on {out['device']}, {a.text_tokens} text tokens, batch 1, best of {a.repeats}",
        "",
        "| precision | size | weights GiB | peak GiB | s/step | replay to double 18 (fraction) | recording overhead |",
        "|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['precision']} | {r['size']}² | {r['weights_GiB']:.1f} | {r['peak_GiB']:.1f} | {r['s_per_step']:.3f} | "
        f"{r['replay_to_double18_s']:.3f} ({r['replay_fraction']:.2f}; blocks {r['expected_fraction']:.2f}) | "
        f"{100 * r['recording_overhead']:.1f} % |"
        for r in out["runs"]
    ]
    write_text(RESULTS / "gpu_smoke.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
