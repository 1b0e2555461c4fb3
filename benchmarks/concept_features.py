"""Which features carry a concept, and is it split among several? A finished run's dictionaries read per concept.

`concepts.csv` scores a concept by its single best feature. When one training run scores a concept
far below its siblings (double1's background=dark: 0.682 in run 0, 0.940 / 0.920 in runs 1-2), this
says why: for each run and concept, the `--top` features by token AUROC over the interp split's
tokens (all of them: a diagnostic, not the held-out score), each with the share of the concept's
tokens it fires on (coverage) and of the other tokens (false positives), and the union of the top
features' coverage. A concept split among features shows several of partial coverage whose union
covers more; a concept without a feature shows low coverage throughout.

    .venv/bin/python benchmarks/concept_features.py --results results/toy --sites double1_img single1_img \\
        --concepts background=dark background=light background=gray \\
        --out benchmarks/results/texture_world/concept_features.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from concept_geometry import Split, open_store  # noqa: E402
from record import write_record  # noqa: E402

from diffdict.dictionaries.base import load_dictionary  # noqa: E402
from diffdict.interp.scoring import auroc  # noqa: E402
from diffdict.world.annotate import Annotator  # noqa: E402


def dense_codes(path: Path, x: torch.Tensor) -> np.ndarray:
    d = load_dictionary(path)
    return d.encode(x).to_dense(d.n_features).numpy()


def concept_rows(z: np.ndarray, y: np.ndarray, top: int) -> list[dict]:
    """The `top` features of codes `z` [N, F] by token AUROC for mask `y` [N]."""
    scores = np.array([auroc(y, z[:, f]) for f in range(z.shape[1])])
    best = np.argsort(-scores, kind="stable")[:top]
    on = z[:, best] > 0
    union = on.any(1)
    rows = []
    for rank, (f, hit) in enumerate(zip(best, on.T), 1):
        rows.append(
            {
                "rank": rank,
                "feature": int(f),
                "token_auroc": float(scores[f]),
                "coverage": float(hit[y].mean()),
                "false positives": float(hit[~y].mean()),
                f"union of top {top}, coverage": float(union[y].mean()),
                f"union of top {top}, false positives": float(union[~y].mean()),
            }
        )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/toy"))
    ap.add_argument("--sites", nargs="+", default=["double1_img", "single1_img"])
    ap.add_argument("--dicts", nargs="+", default=["sae", "sae-r1", "sae-r2"], help="trained dictionaries (runs)")
    ap.add_argument("--concepts", nargs="+", default=["background=dark", "background=light", "background=gray"])
    ap.add_argument("--model", type=Path, default=Path("resources/toy-textures"), help="toy model (its annotator)")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/texture_world/concept_features.md"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    interp = Split(a.results, "interp", Annotator.load(a.model))
    unknown = sorted(set(a.concepts) - set(interp.names))
    if unknown:
        ap.error(f"unknown concepts {unknown} (valid: {', '.join(interp.names)})")
    rows = []
    for site in a.sites:
        x, meta = open_store(a.results, site, "interp")
        masks = interp.token_masks(meta)
        for name in a.dicts:
            z = dense_codes(a.results / "dictionaries" / site / name / "dictionary.safetensors", x)
            for concept in a.concepts:
                y = masks[:, list(interp.names).index(concept)]
                rows += [{"site": site, "dict": name, "concept": concept, **r} for r in concept_rows(z, y, a.top)]
    df = pd.DataFrame(rows)
    about = [
        "Token AUROC over all interp tokens (a diagnostic; `concepts.csv` holds the held-out score);",
        "coverage: share of the concept's tokens the feature fires on; false positives: share of the",
        "other tokens; union: the top features together.",
    ]
    title = "Which features carry a concept: the top features per run, their coverage and union"
    write_record(a.out, title, [*about, "", df.round(3).to_markdown(index=False), ""], df)


if __name__ == "__main__":
    main()
