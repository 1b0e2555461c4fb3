"""Where a BatchTopK SAE spends its latents: active latents per token on object and background
tokens, beside the TopK SAE's (which keeps k on every token that has k positive pre-activations).

`batch_topk.md` asks whether letting busy tokens take more latents isolates the concepts better.
This reads the interpretation split's codes (`features/{site}/{dict}/codes.safetensors`, what
concept recovery scores) and the annotator's token masks, and reports per run, site and dictionary
the mean number of active latents on object tokens (any shape concept on) and on background tokens,
and the share of tokens at the code width's cap (k for TopK, max_k for BatchTopK), pooled over the
dictionary's replicates (their spread beside the mean):

    .venv/bin/python benchmarks/batch_topk_tokens.py --runs default=results/toy other=results/toy_seed1 \\
        --dicts sae batchtopk --out benchmarks/results/texture_world/batch_topk_tokens
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ground_truth_runs import run_spec  # noqa: E402
from matryoshka_latents import replicates  # noqa: E402

from diffdict.atomic import write_table, write_text  # noqa: E402
from diffdict.interp.codes import CodeTable  # noqa: E402
from diffdict.metrics.annotations import read_annotations  # noqa: E402
from diffdict.world.scene import concept_kind  # noqa: E402


def object_rows(codes: CodeTable, ann) -> np.ndarray:
    """bool per code row: an object covers the token (any shape concept's mask is on)."""
    shapes = (concept_kind(pd.Series(ann.concepts)) == "shape").to_numpy()
    row_of = {int(p): i for i, p in enumerate(ann.prompt_id)}
    masks = np.asarray(ann.masks)[..., shapes].any(-1)  # [P, gh, gw] or [P, T]
    flat = masks.reshape(len(masks), -1)
    pid = codes.prompt_id.numpy().astype(np.int64)
    return flat[[row_of[int(p)] for p in pid], codes.token.numpy().astype(np.int64)]


def token_counts(run: Path, site: str, d: str, ann) -> pd.DataFrame:
    """One row per replicate of `d`: active latents on object / background tokens, share at the cap."""
    out = []
    for rep, fdir in enumerate(replicates(run / "features" / site, d)):
        codes = CodeTable.load(fdir / "codes.safetensors")
        active = (codes.values > 0).sum(1).numpy()
        obj = object_rows(codes, ann)
        out.append(
            {
                "replicate": rep,
                "width": codes.indices.shape[1],
                "l0": active.mean(),
                "l0_object": active[obj].mean(),
                "l0_background": active[~obj].mean(),
                "object_share": obj.mean(),
                "at_cap": (active == codes.indices.shape[1]).mean(),
                "none": (active == 0).mean(),
            }
        )
    return pd.DataFrame(out)


def table(runs: dict[str, Path], dicts: list[str]) -> pd.DataFrame:
    rows = []
    for name, run in runs.items():
        ann = read_annotations(run / "annotations" / "interp.npz")
        for site in sorted(p.name for p in (run / "features").iterdir() if p.is_dir()):
            for d in dicts:
                if not (run / "features" / site / d).is_dir():
                    continue
                per = token_counts(run, site, d, ann)
                row = {"run": name, "site": site, "dictionary": d, "runs": len(per)}
                for col in ("width", "l0", "l0_object", "l0_background", "object_share", "at_cap", "none"):
                    row[col] = per[col].mean()
                row["l0_object_range"] = f"{per['l0_object'].min():.2f}-{per['l0_object'].max():.2f}"
                rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", type=run_spec, required=True, help="name=results/<model>")
    ap.add_argument("--dicts", nargs="+", default=["sae", "batchtopk"])
    ap.add_argument("--out", required=True, help="output stem (.csv and .md)")
    a = ap.parse_args(argv)
    df = table(dict(a.runs), a.dicts)
    write_table(f"{a.out}.csv", df)
    cmd = ".venv/bin/python benchmarks/batch_topk_tokens.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = [
        "# Active latents per token, object and background tokens",
        "",
        f"Command: `{cmd}`",
        "",
        "Interpretation split's codes (what concept recovery scores); means over the dictionary's runs.",
        "`l0_object` / `l0_background`: active latents on tokens an object covers / the rest; `object_share`:",
        "the share of object tokens; `at_cap`: tokens using every slot of the code width (k for TopK, max_k for",
        "BatchTopK); `none`: tokens with no active latent.",
        "",
        df.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    write_text(f"{a.out}.md", "\n".join(text))


if __name__ == "__main__":
    main()
