"""Prompt adherence of the trained toy model, and the annotator's accuracy.

Held-out prompts come from the prompt stream (`diffdict.world.prompts_table`), which the toy
model's training scenes never use (a separate seed domain); prompts whose exact caption also
occurs among the training captions are counted and reported separately, so the headline can
be read on novel captions too. An image adheres when the annotator finds exactly the prompt's
objects with the right colour and shape.

    python benchmarks/prompt_adherence.py [--model resources/toy-shapes] [--n 512] [--seed 12345]

Writes benchmarks/results/prompt_adherence.{json,md} and benchmarks/results/toy_samples.png.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffdict.atomic import write_json, write_text
from diffdict.config import load_yaml
from diffdict.model import generate_images
from diffdict.world import TRAIN_DOMAIN, prompts_table, sample_scenes
from diffdict.world.annotate import Annotator, evaluate_annotator
from diffdict.world.evaluate import adherence_table, sample_grid_figure
from diffdict.world.scene import Scene

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resources/toy-shapes")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--seed", type=int, default=12345, help="prompt-table seed (held out: not the training stream)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    cmd = shlex.join(["python", f"benchmarks/{Path(__file__).name}", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    from diffusers import FluxPipeline

    model = Path(args.model)
    training = json.loads((model / "training.json").read_text())
    pipe = FluxPipeline.from_pretrained(model)
    ann = Annotator.load(model)

    textures = bool(training.get("textures", False))  # the world the model was trained on
    df = prompts_table(args.n, seed=args.seed, start_id=10**6, textures=textures)
    scenes = [Scene.from_json(s) for s in df["scene"]]
    _, train_caps, _ = sample_scenes(
        training["n_images"],
        training["seed"],
        TRAIN_DOMAIN,
        p_two=training.get("two_object_fraction", 0.35),
        textures=textures,
    )
    seen = df["prompt"].isin(set(train_caps)).to_numpy()

    t0 = time.time()
    model_cfg = load_yaml(Path(__file__).resolve().parents[1] / "config/config.yaml")["model"]  # sampling settings
    images = generate_images(pipe, df["prompt"].tolist(), df["seed"].to_numpy(), model_cfg, batch_size=32)
    t_gen = time.time() - t0
    tab = adherence_table(ann, images, scenes)
    tab["seen_caption"] = seen

    def rate(mask, col="adheres"):
        return float(tab.loc[mask, col].mean()) if mask.any() else None

    one, two = tab["n_objects"].to_numpy() == 1, tab["n_objects"].to_numpy() == 2
    res = {
        "command": cmd,
        "model": str(model),
        "n_prompts": args.n,
        "prompt_seed": args.seed,
        "adherence": rate(np.ones(len(tab), bool)),
        "adherence_one_object": rate(one),
        "adherence_two_objects": rate(two),
        "adherence_novel_captions": rate(~seen),
        "adherence_seen_captions": rate(seen),
        "fraction_captions_seen_in_training": float(seen.mean()),
        "color_adherence": rate(np.ones(len(tab), bool), "color_ok"),
        "shape_adherence": rate(np.ones(len(tab), bool), "shape_ok"),
        "position_adherence": rate(np.ones(len(tab), bool), "position_ok"),
        "background_adherence": rate(np.ones(len(tab), bool), "background_ok"),
        "all_attributes_adherence": rate(np.ones(len(tab), bool), "all_attributes_ok"),
        "texture_adherence": rate(np.ones(len(tab), bool), "texture_ok") if textures else None,
        "n_one_object": int(one.sum()),
        "n_two_objects": int(two.sum()),
        "generation_seconds_per_image": t_gen / args.n,
        "annotator_heldout_render": evaluate_annotator(ann, n=1000, seed=7),
        "annotator_training_report": training.get("annotator", {}),
        "training_seconds": training["seconds"],
        "training": {k: training[k] for k in ("seed", "n_images", "steps", "vae_steps", "batch_size", "torch_threads")},
        "model_megabytes": round(sum(f.stat().st_size for f in model.rglob("*") if f.is_file()) / 2**20, 2),
        "torch_threads": args.threads,
    }
    out = Path(args.out)
    write_json(out / "prompt_adherence.json", res)
    k = 24
    sample_grid_figure(
        images[:k],
        df["prompt"].tolist()[:k],
        out / "toy_samples.png",
        marks=tab["adheres"].tolist()[:k],
        title=f"toy model, held-out prompts (green: annotator agrees; {res['adherence']:.0%} of {args.n})",
    )
    a = res["annotator_heldout_render"]
    md = [
        "# Prompt adherence of the toy model",
        "",
        f"Command: `{cmd}`",
        "",
        "| measure | value |",
        "|---|---|",
        f"| adherence (colour and shape of every object, no extras) | {res['adherence']:.3f} |",
        f"| one-object prompts ({res['n_one_object']}) | {res['adherence_one_object']:.3f} |",
        f"| two-object prompts ({res['n_two_objects']}) | {res['adherence_two_objects']:.3f} |",
        f"| captions never seen in training ({int((~seen).sum())}) | {res['adherence_novel_captions']:.3f} |",
        f"| colour / shape / position / background | {res['color_adherence']:.3f} / {res['shape_adherence']:.3f} / "
        f"{res['position_adherence']:.3f} / {res['background_adherence']:.3f} |",
        f"| all attributes incl. size and position | {res['all_attributes_adherence']:.3f} |",
        *([f"| texture (colour and texture of every object) | {res['texture_adherence']:.3f} |"] if textures else []),
        f"| annotator on held-out renderings: colour / shape / size{' / texture' * textures} | "
        + " / ".join(f"{a[f'{k}_accuracy']:.3f}" for k in ("color", "shape", "size", *("texture",) * textures))
        + " |",
        f"| generation, s/image (batch 32, CPU, {args.threads} thread) | {res['generation_seconds_per_image']:.4f} |",
        f"| training time (s): VAE / flow / total | {res['training_seconds']['vae']} / "
        f"{res['training_seconds']['flow']} / "
        f"{res['training_seconds']['total']} |",
        f"| model folder size (MB) | {res['model_megabytes']} |",
        "",
        "![samples](toy_samples.png)",
        "",
    ]
    write_text(out / "prompt_adherence.md", "\n".join(md) + "\n")
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
