"""NF4 on a small random Flux transformer (CPU): output error and linear-weight memory.

Quantises with `diffdict.model.nf4.quantize_nf4` (the code path `load_pipeline` uses for
precision nf4) and compares one forward pass with the fp32 and bf16 models on the same input.
Memory is measured from the tensors actually held (4-bit data + quantisation state).

    python benchmarks/bench_nf4.py [--d-head 64] [--heads 4]

Writes benchmarks/results/bench_nf4.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

import torch

from diffdict.atomic import write_json, write_text
from diffdict.model.nf4 import linear_weight_bytes, quantize_nf4
from diffdict.model.tiny import tiny_transformer

RESULTS = Path(__file__).parent / "results"


def command_line(argv) -> str:
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{Path(__file__).name}", *args])


def rel_err(y, ref):
    return float((y.float() - ref).norm() / ref.norm())


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-head", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--double", type=int, default=2)
    ap.add_argument("--single", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    d = a.d_head * a.heads
    base = tiny_transformer(
        0,
        attention_head_dim=a.d_head,
        num_attention_heads=a.heads,
        num_layers=a.double,
        num_single_layers=a.single,
        joint_attention_dim=64,
        pooled_projection_dim=32,
    )
    g = torch.Generator().manual_seed(0)
    side = int(a.tokens**0.5)
    from diffusers import FluxPipeline

    x = dict(
        hidden_states=torch.randn(2, side * side, 16, generator=g),
        encoder_hidden_states=torch.randn(2, 32, 64, generator=g),
        pooled_projections=torch.randn(2, 32, generator=g),
        timestep=torch.full((2,), 0.7),
        img_ids=FluxPipeline._prepare_latent_image_ids(None, side, side, "cpu", torch.float32),
        txt_ids=torch.zeros(32, 3),
        return_dict=False,
    )

    def run(m, dtype):
        kw = {k: (v.to(dtype) if torch.is_tensor(v) and k not in ("img_ids", "txt_ids") else v) for k, v in x.items()}
        with torch.no_grad():
            return m(**kw)[0].float()

    ref = run(base, torch.float32)
    bf16 = copy.deepcopy(base).to(torch.bfloat16)
    fp32_linear = linear_weight_bytes(base)["float"]
    bf16_linear = linear_weight_bytes(bf16)["float"]
    skipped_bf16 = base.proj_out.weight.numel() * 2  # kept unquantised by default
    rows = {"bf16": {"rel_err": rel_err(run(bf16, torch.bfloat16), ref)}}
    for name, cd in (("nf4 (compute fp32)", torch.float32), ("nf4 (compute bf16)", torch.bfloat16)):
        q = quantize_nf4(copy.deepcopy(base), cd, "cpu")
        mem = linear_weight_bytes(q)
        rows[name] = {
            "rel_err": rel_err(run(q, cd), ref),
            "quantized_linear_bytes": mem["quantized"],
            "unquantized_linear_bytes": mem["float"],
            "ratio_vs_bf16_same_layers": mem["quantized"] / (bf16_linear - skipped_bf16),
        }
    res = {
        "command": command_line(argv),
        "model": {"d_model": d, "n_double": a.double, "n_single": a.single, "image_tokens": side * side},
        "fp32_linear_bytes": fp32_linear,
        "bf16_linear_bytes": bf16_linear,
        "results": rows,
        "tolerance": {"nf4_rel_err_max": 0.15, "bf16_rel_err_max": 0.02},
    }
    res["ok"] = all(r["rel_err"] <= 0.15 for r in rows.values()) and rows["bf16"]["rel_err"] <= 0.02
    write_json(RESULTS / "bench_nf4.json", res, sort_keys=False)
    md = [
        "# NF4 vs fp32 / bf16 on a small random Flux transformer (CPU)",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Model: d={d}, {a.double} double + {a.single} single blocks, {side * side} image + 32 text tokens, "
        "random init. Error: ||y - y_fp32|| / ||y_fp32|| of the transformer output.",
        "",
        "| weights | relative error vs fp32 | linear weights held | vs bf16 (same layers) |",
        "|---|---|---|---|",
        f"| fp32 | 0 | {fp32_linear / 1e6:.2f} MB | 2.00 |",
        f"| bf16 | {rows['bf16']['rel_err']:.4f} | {bf16_linear / 1e6:.2f} MB | 1.00 |",
    ]
    for name, r in rows.items():
        if name != "bf16":
            md.append(
                f"| {name} | {r['rel_err']:.4f} | {r['quantized_linear_bytes'] / 1e6:.2f} MB 4-bit + "
                f"{r['unquantized_linear_bytes'] / 1e6:.3f} MB float (`proj_out`) | "
                f"{r['ratio_vs_bf16_same_layers']:.3f} |"
            )
    md += [
        "",
        "Stated tolerance: NF4 relative output error <= 0.15, bf16 <= 0.02 "
        f"({'met' if res['ok'] else 'NOT met'}). NF4 bytes include the 4-bit codes, the (double-quantised) "
        "absmax per 64-weight block and the code tables.",
    ]
    write_text(RESULTS / "bench_nf4.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return res


if __name__ == "__main__":
    main()
