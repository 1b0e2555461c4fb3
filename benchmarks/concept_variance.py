"""How much of a site's activation variance the shapes world's concepts explain.

Among the interp split's object tokens (tokens some object covers), the share of their variance
that lies between the values of each object attribute (between-class sum of squares over total,
classes = the attribute's value at the token), and the same for background tokens. A
reconstruction objective spends its latents where the variance is; this says what it sees.

    .venv/bin/python benchmarks/concept_variance.py --results results/toy \\
        --out benchmarks/results/concept_variance.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from diffdict.metrics.concepts import concept_kind  # noqa: E402
from diffdict.store import ActivationStore  # noqa: E402


def shares(results: Path, site: str) -> dict:
    store = ActivationStore.open(results / "activations" / site / "interp.zarr")
    x, meta = store.read(slice(None)).double().numpy(), store.meta()
    ann = np.load(results / "annotations" / "interp.npz")
    names = pd.Series([str(c) for c in ann["concepts"]])
    row = {int(p): i for i, p in enumerate(ann["prompt_id"])}
    m = ann["token_masks"].reshape(len(row), -1, len(names))[
        [row[int(p)] for p in meta["prompt_id"]], meta["token"].to_numpy()
    ]
    kinds = concept_kind(names).to_numpy()
    obj = m[:, kinds != "background"].any(1)
    out = {"site": site, "object_token_share": float(obj.mean())}
    for region, sel, group in (
        ("object", obj, [k for k in np.unique(kinds) if k != "background"]),
        ("background", ~obj, ["background"]),
    ):
        xr = x[sel] - x[sel].mean(0)
        total = (xr**2).sum()
        for k in group:
            cols = np.flatnonzero(kinds == k)
            label = m[sel][:, cols].argmax(1)
            between = sum((xr[label == v].mean(0) ** 2).sum() * (label == v).sum() for v in np.unique(label))
            out[f"{k} (among {region} tokens)"] = float(between / total)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/toy"))
    ap.add_argument("--sites", nargs="+", default=["double1_img", "single1_img"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/concept_variance.md"))
    a = ap.parse_args()
    df = pd.DataFrame([shares(a.results, s) for s in a.sites]).set_index("site").T.round(3)
    text = "\n".join(
        [
            "# Variance the shapes world's concepts explain",
            "",
            f"`python {' '.join(sys.argv)}`",
            "",
            "Share of variance between the values of each attribute (between-class sum of squares "
            "over total), among object tokens or background tokens of the interp split.",
            "",
            df.to_markdown(),
            "",
        ]
    )
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
