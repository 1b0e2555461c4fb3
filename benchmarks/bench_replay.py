"""Replay capture cost vs full generation (tiny model, CPU).

Claim: capturing a site at block depth i (0-based over N = double + single blocks) by replay
costs at most (i+1)/N + 10 % of the full generation's transformer time, because the forward
pass stops right after the site's block. Measured twice: the replay alone (the transformer's
share of the capture, what the claim is about) and the whole capture call, which also reads the
shard and writes the zarr store: fixed costs that do not shrink with the model, so that ratio
depends on how fast the CPU runs the tiny transformer.

    python benchmarks/bench_replay.py [--threads 1] [--repeats 3]

Writes benchmarks/results/bench_replay.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from diffdict.atomic import write_json, write_text
from diffdict.devices import describe
from diffdict.model import capture, generate_shard
from diffdict.model.tiny import tiny_pipeline
from diffdict.sites import Site

RESULTS = Path(__file__).parent / "results"


def command_line(argv) -> str:
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{Path(__file__).name}", *args])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=64, help="image side in pixels (4 px per token side)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    n_double, n_single = 4, 8
    pipe = tiny_pipeline(
        0, num_layers=n_double, num_single_layers=n_single, attention_head_dim=32, num_attention_heads=4
    )
    pipe.set_progress_bar_config(disable=True)
    N = n_double + n_single
    cfg = dict(
        name="bench",
        height=a.size,
        width=a.size,
        num_inference_steps=a.steps,
        guidance_scale=0.0,
        max_sequence_length=32,
    )
    prompts = pd.DataFrame(
        {
            "prompt_id": range(a.prompts),
            "prompt": ["a red circle on dark background"] * a.prompts,
            "seed": range(a.prompts),
        }
    )
    tr = pipe.transformer
    # CPU time of this process (1 torch thread): far less sensitive than wall time to the other
    # jobs sharing the machine; wall times are recorded alongside
    clock = time.process_time
    t_tr = [0.0]

    def pre(m, args, kw):
        t_tr.append(clock())

    def post(m, args, kw, out):
        t_tr[0] += clock() - t_tr.pop()

    # the replay's share of a capture: its forward passes stop at the site, so no post hook fires
    capture_module = importlib.import_module("diffdict.model.capture")  # `diffdict.model.capture`: the function
    run_to_site, t_replay = capture_module.run_to_site, [0.0]

    def timed_run_to_site(*args, **kw):
        t0 = clock()
        out = run_to_site(*args, **kw)
        t_replay[0] += clock() - t0
        return out

    capture_module.run_to_site = timed_run_to_site

    tmp = Path(tempfile.mkdtemp())
    shard = tmp / "000.safetensors"
    all_steps = tuple(range(a.steps))
    sites = [
        Site(f"{b}{i}", b, i, steps=all_steps) for b, i in [("double", 0), ("double", 3), ("single", 3), ("single", 7)]
    ]
    gen_tr, cap, wall, replay = [], *({s.name: [] for s in sites} for _ in range(3))
    # interleave generation and captures so that load from other processes hits all alike; keep the best
    for r in range(a.repeats):
        t_tr[:] = [0.0]
        h1 = tr.register_forward_pre_hook(pre, with_kwargs=True)
        h2 = tr.register_forward_hook(post, with_kwargs=True)
        generate_shard(pipe, prompts, cfg, shard, batch_size=4, progress=False)
        h1.remove(), h2.remove()
        gen_tr.append(t_tr[0])
        for site in sites:
            t0, w0, t_replay[0] = clock(), time.perf_counter(), 0.0
            capture(pipe, shard, site, tmp / f"{site.name}-{r}.zarr", progress=False)
            cap[site.name].append(clock() - t0)
            replay[site.name].append(t_replay[0])
            wall[site.name].append(time.perf_counter() - w0)
    full = min(gen_tr)
    rows = []
    for site in sites:
        depth = site.depth(n_double)
        cost, replay_cost = min(cap[site.name]) / full, min(replay[site.name]) / full
        bound = (depth + 1) / N + 0.10
        rows.append(
            {
                "site": site.name,
                "depth": depth,
                "replay_s": min(replay[site.name]),
                "replay_s_all": replay[site.name],
                "replay_ratio": replay_cost,
                "replay_ok": replay_cost <= bound,
                "capture_s": min(cap[site.name]),
                "capture_s_all": cap[site.name],
                "capture_wall_s_all": wall[site.name],
                "ratio": cost,
                "bound": bound,
                "ok": cost <= bound,
            }
        )
    res = {
        "command": command_line(argv),
        "model": {
            "n_double": n_double,
            "n_single": n_single,
            "d_model": 128,
            "image_tokens": (a.size // 4) ** 2,
            "text_tokens": 32,
            "steps": a.steps,
            "prompts": a.prompts,
        },
        "threads": a.threads,
        "cpu": describe("cpu"),
        "full_generation_transformer_s": full,
        "full_generation_transformer_s_all": gen_tr,
        "sites": rows,
    }
    write_json(RESULTS / "bench_replay.json", res, sort_keys=False)
    md = [
        "# Replay capture vs full generation (tiny model, CPU)",
        "",
        f"Command: `{res['command']}` (torch threads {a.threads}, best of {a.repeats})",
        "",
        f"CPU: {res['cpu']}",
        "",
        f"Model: {n_double} double + {n_single} single blocks, d=128, {(a.size // 4) ** 2} image + 32 text tokens, "
        f"{a.steps} steps, {a.prompts} prompts. Full generation transformer time: {full:.3f} s.",
        "",
        "Times are process CPU seconds with one torch thread (wall time on this shared 2-core machine varies 2x "
        "with the other jobs; wall times are in the JSON). Capture replays all steps of the shard and includes "
        "reading the shard and writing the zarr store; replay is the transformer's share of it (the forward "
        "passes that stop at the site), which the claim is about.",
        "",
        "| site | depth i | replay CPU s | replay / full | capture CPU s | capture / full | bound (i+1)/N + 0.10 "
        "| replay ok | capture ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['site']} | {r['depth']} | {r['replay_s']:.3f} | {r['replay_ratio']:.3f} | {r['capture_s']:.3f} "
        f"| {r['ratio']:.3f} | {r['bound']:.3f} | {r['replay_ok']} | {r['ok']} |"
        for r in rows
    ]
    write_text(RESULTS / "bench_replay.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return res


if __name__ == "__main__":
    main()
