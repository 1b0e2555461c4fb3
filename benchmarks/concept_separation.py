"""Can the concept-recovery test pass in the shapes world? Concepts planted in the toy's activations.

`concept_geometry.md` finds the shapes world's object concepts 0.5 within-class spreads apart
along a plane, and there the SAE stays close to random directions within the kind. This asks
whether that is the geometry or the method and the metric. It plants a six-valued concept in a
finished run's own activations: every annotated object gets a seeded random label and its tokens
move by that label's vector, at a chosen separation (mean distance between the label means over
the object tokens' RMS spread, `metrics.concept_geometry.class_geometry`) and in one of four
geometries — a regular hexagon in a random plane, as the colours lie; the same with each token's
offset scaled by how much of it the object covers; six orthogonal directions; or the hexagon in
the site's own colour plane (the class-mean plane of the world's colours), where the paint and
the colour code already vary, so the planted values compete with them. The world's own
colours, scored on the dictionaries of the unchanged data, are the reference. The default SAE
and random directions are trained on the planted train split and the planted concept is scored
exactly as `concepts.csv` scores the world's (best feature chosen on one half of the interp
images, token AUROC on the other, over all tokens and within object tokens), beside the linear
probe. The nuisance — grid position, the image, the noisy latent — is the toy's own, so only the
concept's geometry changes; separation 0 is the null (labels carry nothing).

    .venv/bin/python benchmarks/concept_separation.py --results results/shapes \\
        --out benchmarks/results/concept_separation.md
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
from concept_sweep import RANDOM, SAE, batches_of, summary  # noqa: E402
from record import write_record  # noqa: E402

from diffdict.atomic import atomic_path  # noqa: E402
from diffdict.dictionaries import build  # noqa: E402
from diffdict.metrics.concept_geometry import class_geometry, class_plane, variance_share  # noqa: E402
from diffdict.metrics.concepts import concept_recovery, probe_recovery  # noqa: E402
from diffdict.world.annotate import Annotator  # noqa: E402

VALUES = 6  # as many as the world's colours
NAMES = [f"planted={v}" for v in range(VALUES)]


GEOMETRIES = ("plane", "plane x coverage", "orthogonal", "colour plane")


def geometry(kind: str, d: int, seed: int, colour_plane: np.ndarray | None = None) -> np.ndarray:
    """[VALUES, d] label vectors with mean pairwise distance 1; "colour plane": the hexagon in
    `colour_plane` ([2, d] orthonormal), where the world's own colour code and paint vary."""
    if kind == "colour plane":
        q = colour_plane.T
    else:
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, VALUES)))
    if kind.startswith("plane") or kind == "colour plane":
        theta = 2 * np.pi * np.arange(VALUES) / VALUES
        v = np.cos(theta)[:, None] * q[:, 0] + np.sin(theta)[:, None] * q[:, 1]
    elif kind == "orthogonal":
        v = q.T.copy()
    else:
        raise ValueError(f"unknown geometry '{kind}' (valid: {', '.join(GEOMETRIES)})")
    i, j = np.triu_indices(VALUES, 1)
    return v / np.linalg.norm(v[i] - v[j], axis=1).mean()


def planted_masks(data: Split, seed: int) -> np.ndarray:
    """bool [P, T, VALUES]: each object (an image's tokens of one position concept) gets a label
    hashed from (prompt id, position, seed), so every split and run agrees on it."""
    pos = data.masks[:, :, data.kinds == "position"]  # [P, T, 4]
    pids = data.prompt_ids.astype(np.int64)
    h = (pids[:, None] * 4 + np.arange(pos.shape[-1])) * 2654435761 + seed * 97
    label = (h % (2**32)) % VALUES  # [P, 4]
    out = np.zeros((*pos.shape[:2], VALUES), bool)
    for p in range(pos.shape[-1]):
        out |= pos[:, :, p, None] & (label[:, p, None, None] == np.arange(VALUES))
    return out


def plant(x: torch.Tensor, meta: pd.DataFrame, data: Split, masks: np.ndarray, vectors: np.ndarray, by_coverage: bool):
    """x plus each object token's label vector; `by_coverage`: scaled by the share of the token's
    pixels the object covers, as a paint colour mixes with the background at an object's edge."""
    r, _, t = data.rows(meta)
    m = masks[r, t]  # [N, VALUES]
    w = m.astype(np.float32) * (data.coverage[r, t, None].astype(np.float32) if by_coverage else 1.0)
    return x + torch.from_numpy(w @ vectors.astype(np.float32)), m


def describe(x: np.ndarray, labels: np.ndarray, basis: np.ndarray) -> dict:
    """Separation of x's classes and the share of x's variance in the span of `basis` rows (0
    when they are all zero: nothing planted)."""
    share = variance_share(x, np.linalg.qr(basis.T)[0].T).sum() if basis.any() else 0.0
    return {"separation": class_geometry(x, labels)["separation"], "variance share": float(share)}


def run(results: Path, site: str, train: Split, interp: Split, separations, geometries, seeds) -> list[dict]:
    mt_, mi_ = planted_masks(train, 0), planted_masks(interp, 0)
    xt, mt = open_store(results, site, "train")
    xi, mi = open_store(results, site, "interp")
    r, _, t = interp.rows(mi)
    xo = xi[mi_[r, t].any(1)].double().numpy()
    spread = float(np.sqrt(((xo - xo.mean(0)) ** 2).sum(1).mean()))
    pids = interp.prompt_ids
    grid = (len(mi_), *interp.grid)
    planted = (mi_.reshape(*grid, VALUES), NAMES)
    # the reference: the world's own colours, scored on the dictionaries of the unchanged data
    is_colour = interp.kinds == "color"
    colour = (interp.masks[:, :, is_colour].reshape(*grid, -1), list(interp.names[is_colour]))
    col = interp.label(interp.token_masks(mi), "color")
    xc = xi[col >= 0].double().numpy()
    reference = {"geometry": "the world's colours (reference)", "target separation": np.nan}
    colour_plane = class_plane(xc, col[col >= 0])
    reference |= describe(xc, col[col >= 0], colour_plane)

    rows = []
    for geo in geometries:
        for sep in separations:
            if sep == 0 and geo != geometries[0]:
                continue  # the null does not depend on the geometry
            vec = geometry(geo, xt.shape[1], seed=1, colour_plane=colour_plane) * sep * spread
            by_coverage = geo.endswith("coverage")
            x_train, _ = plant(xt, mt, train, mt_, vec, by_coverage)
            x_interp, lab = plant(xi, mi, interp, mi_, vec, by_coverage)
            o = lab.any(1)
            info = {"geometry": "none (null)" if sep == 0 else geo, "target separation": sep}
            info |= describe(x_interp[o].double().numpy(), lab[o].argmax(1), vec[: None if geo == "orthogonal" else 2])
            targets = [(info, planted)] + ([(reference, colour)] if sep == 0 else [])
            methods = {"sae": SAE, "random": RANDOM}
            rows += score(site, x_train, x_interp, mi, pids, targets, methods, seeds, summary)
    return rows


def score(site, x_train, x_interp, meta, pids, targets, methods, seeds, summarise) -> list[dict]:
    """Rows scoring each target (`tag`, (`masks`, `names`)) on `x_interp` as `concepts.csv` scores
    concepts: the linear probe, and each method's dictionary (name -> settings with `kind`) trained
    on `x_train` once per seed; `summarise(table, prefix)` turns a recovery table into columns."""
    rows = []
    for tag, (masks, names) in targets:
        probe = probe_recovery(x_interp.numpy(), meta["prompt_id"], meta["token"], masks, names, mask_prompt_ids=pids)
        rows.append({"site": site, **tag, "method": "linear probe", "seed": 0, **summarise(probe, "probe_")})
    for method, cfg in methods.items():
        for seed in seeds:
            hp = {k: v for k, v in cfg.items() if k != "kind"} | {"seed": seed}
            batches = batches_of(x_train, hp.get("batch_size", 4096), seed)
            d = build(cfg["kind"], hp, batches, d_model=x_train.shape[1], progress=False)
            codes = d.encode(x_interp)
            for tag, (masks, names) in targets:
                tab = concept_recovery(codes, meta["prompt_id"], meta["token"], masks, names, d.n_features, pids)
                rows.append({"site": site, **tag, "method": method, "seed": seed, **summarise(tab, "")})
                print(rows[-1], flush=True)
    return rows


def table(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["site", "geometry", "target separation"]  # the reference's target is NaN: keep it
    by = df.groupby(keys + ["method"], sort=False, dropna=False)
    wide = by[["all", "kind_all"]].mean().unstack("method")
    out = df.groupby(keys, sort=False, dropna=False)[["separation", "variance share"]].mean()
    out["runs"] = by.size().unstack("method")["sae"]
    for col, tag in (("all", "all tokens"), ("kind_all", "within objects")):
        for m in ("linear probe", "sae", "random"):
            out[f"{m}, {tag}"] = wide[(col, m)]
        out[f"sae - random, {tag}"] = wide[(col, "sae")] - wide[(col, "random")]
    return out.reset_index()


def figure(df: pd.DataFrame, out: Path) -> None:
    """`out` (PNG): within-objects AUROC against the measured separation, one panel per site and geometry:
    SAE, random directions and the probe, the null at separation 0 in every panel, and the
    world's colours (measured on the unchanged data) as the reference."""
    import matplotlib.pyplot as plt

    from diffdict.plots.style import DPI, KIND_LABELS, apply_style, dict_palette

    apply_style()
    sites = list(dict.fromkeys(df["site"]))
    geos = [g for g in GEOMETRIES if g in set(df["geometry"])]
    colours = dict_palette({"topk_sae": "topk_sae", "random": "random"})
    methods = {"sae": ("topk_sae", "o-"), "random": ("random", "s--"), "linear probe": (None, "^:")}
    fig, axes = plt.subplots(
        len(sites), len(geos), figsize=(3.1 * len(geos), 2.8 * len(sites)), squeeze=False, sharex=True, sharey=True
    )
    mean = df.groupby(["site", "geometry", "method"], sort=False)[["separation", "kind_all"]].mean()
    for i, site in enumerate(sites):
        for j, geo in enumerate(geos):
            ax = axes[i, j]
            for method, (kind, style) in methods.items():
                rows = df[(df.site == site) & (df.method == method) & df.geometry.isin(["none (null)", geo])]
                line = rows.groupby("target separation")[["separation", "kind_all"]].mean()
                colour = colours[kind] if kind else "0.45"
                label = KIND_LABELS.get(kind, method)
                ax.plot(line["separation"], line["kind_all"], style, color=colour, label=label, ms=4)
                ref = mean.loc[(site, "the world's colours (reference)", method)]
                ax.plot(ref["separation"], ref["kind_all"], "*", color=colour, ms=11, mec="k", mew=0.5)
            ax.axhline(0.5, color="0.7", lw=0.8, zorder=0)
            ax.set_ylim(0.45, 1.02)
            ax.set_title(f"{site}\n{geo}", fontsize=9)
            ax.set_xlabel("separation (within-class spreads)" if i == len(sites) - 1 else "")
            ax.set_ylabel("token AUROC within objects" if j == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="*", ls="", color="0.5", mec="k", mew=0.5, ms=11))
    labels.append("the world's colours (same dictionaries)")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.04))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(out) as tmp:  # PNG only: the README shows it
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/shapes"))
    ap.add_argument("--sites", nargs="+", default=["double1_img", "single1_img"])
    ap.add_argument("--model", type=Path, default=Path("resources/toy-shapes"), help="toy model (its annotator)")
    ap.add_argument("--separations", nargs="+", type=float, default=[0.0, 0.25, 0.5, 1.0])
    ap.add_argument("--geometries", nargs="+", default=list(GEOMETRIES), choices=GEOMETRIES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/concept_separation.md"))
    ap.add_argument("--figure-only", action="store_true", help="only redraw the figure from the CSV next to --out")
    a = ap.parse_args()
    if a.figure_only:
        figure(pd.read_csv(a.out.with_suffix(".csv")), a.out.with_suffix(".png"))
        return
    torch.set_num_threads(2)
    annotator = Annotator.load(a.model)  # both splits annotated once, for every site
    train, interp = Split(a.results, "train", annotator), Split(a.results, "interp", annotator)
    rows = []
    for site in a.sites:
        rows += run(a.results, site, train, interp, a.separations, a.geometries, a.seeds)
    df = pd.DataFrame(rows)
    figure(df, a.out.with_suffix(".png"))
    about = [
        "Held-out token AUROC of the best feature for a planted six-valued concept (mean over its",
        "values), over all tokens and within object tokens; SAE and random directions: mean over the",
        "seeds (`runs`). `separation`: measured on the planted interp object tokens; `variance share`:",
        "share of their variance in the label vectors' span.",
    ]
    title = "Concepts planted in the toy's activations: when does the SAE find them?"
    write_record(a.out, title, [*about, "", table(df).round(3).to_markdown(index=False), ""], df)


if __name__ == "__main__":
    main()
