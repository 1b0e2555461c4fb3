"""Why no single dictionary feature isolates a shapes-world concept: how the sites encode them.

Reads a finished toy run (interp stores, generation shards, annotations, dictionaries) and
writes four tables (`diffdict.metrics.concept_geometry` does the math):

1. What explains the object tokens' variance: R² of a least-squares fit on each factor — the
   concepts (one-hot), the token's grid position, its own noisy input latent x_t, how much of
   the token the object covers, the step, and the image (image x step, everything an image
   shares) — and the background's share among background tokens.
1b. What the colour class-mean plane holds: R² of the object tokens' coordinates in it on the
   colour category, the category scaled by the object's coverage of the token, and the token's
   mean pixel colour (the paint, mixed with the background at an object's edge).
2. Where the class means lie (colour, shape, size among object tokens; background among
   background tokens, the one concept the SAE isolates, as the control): dimensions holding
   95 % of the between-class variance, the top two PCA shares, and the separation (mean
   distance between class means over the within-class RMS spread); for colour, the Spearman
   correlation of the class means' pairwise distances with the RGB prototypes'; and the
   separation among interior tokens (the object covers >= 95 % of the token) and edge tokens.
3. Whether one direction can separate the values, and whether the dictionaries have it: the
   Fisher ratio (between-class over within-class variance along the direction) and the share
   of the object tokens' variance along it, for the class-mean plane's first axis, the
   discriminant direction (what a linear probe can use) and each dictionary's best direction
   (mean over its runs); and how much of the dictionaries' directions lies in the class-mean
   plane — the largest share of a unit direction's squared norm, and how many directions hold
   more than 30 % of theirs (random directions expect 2 / d).
4. (`--train`, written last) SAEs on data changed with ground truth (object tokens only; one
   background's images at a time, trained and scored there), label-free nuisance removal (grid
   position, input latent, each image's mean) or whitening, beside random directions on the same
   data, scored like `concepts.csv` (`kind_*`: within the kind).
5. The workflow run's dictionaries within the kind when the object concepts' masks keep only
   interior tokens (a diagnostic beside `concepts.csv`: do tokens that carry the colour
   cleanly separate the SAE from random directions?).

    .venv/bin/python benchmarks/concept_geometry.py --results results/shapes --train \\
        --inputs double1_img=double0_img single1_img=single0_img \\
        --out benchmarks/results/concept_geometry.md

The block-update variant needs the input sites' stores (double0_img, single0_img): the command
in the header of `benchmarks/sweep_sites.yaml` captures them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from concept_sweep import RANDOM, SAE, batches_of, summary  # noqa: E402
from record import write_record  # noqa: E402

from diffdict.dictionaries import build, load_dictionary  # noqa: E402
from diffdict.metrics.concept_geometry import (  # noqa: E402
    class_geometry,
    class_plane,
    discriminant_direction,
    explained_variance,
    fisher_ratio,
    one_hot,
    subspace_share,
    variance_share,
)
from diffdict.metrics.concepts import concept_recovery  # noqa: E402
from diffdict.model import read_shard  # noqa: E402
from diffdict.store import ActivationStore  # noqa: E402
from diffdict.world.annotate import Annotator, coverage  # noqa: E402
from diffdict.world.scene import COLORS, concept_kind  # noqa: E402

OBJECT_KINDS = ("color", "shape", "size")  # plus "texture" in the texture world (`Split.object_kinds`)
INTERIOR = 0.95  # an object token is interior when its object covers at least this share of its pixels


class Split:
    """One split's generation shards (input latents, images), token masks and object coverage."""

    def __init__(self, results: Path, split: str, annotator: Annotator):
        parts = [
            read_shard(f, names=("prompt_id", "latents", "images"))
            for f in sorted(results.glob(f"generations/{split}/*.safetensors"))
        ]
        self.grid = tuple(parts[0][1]["grid"])
        self.latents = np.concatenate([t["latents"].numpy() for t, _ in parts], 1)  # [steps, N, T, C]
        pids = np.concatenate([t["prompt_id"].numpy() for t, _ in parts])
        self.prompt_ids = pids  # row order of masks, coverage and latents
        self.row = {int(p): i for i, p in enumerate(pids)}
        images = np.concatenate([t["images"].numpy() for t, _ in parts])
        self.masks = annotator.token_masks(images, grid=self.grid).reshape(len(pids), -1, len(annotator.concepts))
        dets, _ = annotator.detect(images)
        self.coverage = np.stack(
            [sum((coverage(d.mask, self.grid).ravel() for d in ds), np.zeros(len(self.masks[0]))) for ds in dets]
        )
        n, h, w, _ = images.shape
        gh, gw = self.grid  # each token's mean pixel colour, the paint it actually shows
        self.patch_rgb = images.reshape(n, gh, h // gh, gw, w // gw, 3).mean((2, 4)).reshape(n, gh * gw, 3) / 255
        self.names = pd.Series(annotator.concepts)
        self.kinds = concept_kind(self.names).to_numpy()
        self.object_kinds = (*OBJECT_KINDS, *(("texture",) if "texture" in self.kinds else ()))

    def rows(self, meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.array([self.row[int(p)] for p in meta["prompt_id"]]),
            meta["step"].to_numpy(),
            meta["token"].to_numpy(),
        )

    def x_t(self, meta: pd.DataFrame) -> np.ndarray:
        r, s, t = self.rows(meta)
        return self.latents[s, r, t]

    def token_masks(self, meta: pd.DataFrame) -> np.ndarray:
        r, _, t = self.rows(meta)
        return self.masks[r, t]

    def label(self, masks: np.ndarray, kind: str) -> np.ndarray:
        """Index of the kind's value at each row (-1: none or ambiguous)."""
        m = masks[:, self.kinds == kind]
        return np.where(m.sum(1) == 1, m.argmax(1), -1)

    def backgrounds(self) -> np.ndarray:
        """Each image's background name (the value most of its tokens carry)."""
        bg = self.kinds == "background"
        return self.names[bg].str.split("=").str[1].to_numpy()[self.masks[:, :, bg].sum(1).argmax(1)]


def open_store(results: Path, site: str, split: str):
    s = ActivationStore.open(results / "activations" / site / f"{split}.zarr")
    return s.read(slice(None)), s.meta()


def variance_table(results: Path, sites: list[str], data: Split) -> pd.DataFrame:
    out = {}
    for site in sites:
        x, meta = open_store(results, site, "interp")
        x = x.double().numpy()
        m = data.token_masks(meta)
        obj = m[:, data.kinds != "background"].any(1)
        r, s, t = data.rows(meta)
        cov = data.coverage[r, t]
        factors = {
            **{k: one_hot(data.label(m, k)) for k in (*data.object_kinds, "position")},
            "all object concepts": m[:, data.kinds != "background"].astype(float),
            "grid position (token x step)": one_hot(t + 1000 * s),
            "own input latent x_t": data.x_t(meta),
            "object coverage of the token": np.c_[cov, cov**2],
            "step": one_hot(s),
        }
        col = {f"{n} (object tokens)": explained_variance(x[obj], f[obj]) for n, f in factors.items()}
        together = np.concatenate([f[obj] for f in factors.values()], 1)
        col["all of the above (object tokens)"] = explained_variance(x[obj], together)
        col["image x step (object tokens)"] = explained_variance(x[obj], one_hot(r[obj] * 100 + s[obj]))
        col["object token share"] = float(obj.mean())
        col["background (background tokens)"] = explained_variance(x[~obj], one_hot(data.label(m, "background")[~obj]))
        out[site] = col
    return pd.DataFrame(out)


def plane_table(results: Path, sites: list[str], data: Split) -> pd.DataFrame:
    """What the colour class-mean plane holds: R² of the object tokens' coordinates in it on the
    colour category, the category scaled by the object's coverage of the token, and the token's
    mean pixel colour (the paint mixed with the background at edges)."""
    out = {}
    for site in sites:
        x, meta = open_store(results, site, "interp")
        x = x.double().numpy()
        m = data.token_masks(meta)
        lab = data.label(m, "color")
        obj = lab >= 0
        r, _, t = data.rows(meta)
        cov, rgb = data.coverage[r, t][obj], data.patch_rgb[r, t][obj]
        y = x[obj] @ class_plane(x[obj], lab[obj]).T
        colour = one_hot(lab[obj])
        out[site] = {
            "colour category": explained_variance(y, colour),
            "colour category x coverage": explained_variance(y, colour * cov[:, None]),
            "token's mean pixel colour (RGB)": explained_variance(y, rgb),
            "token's mean pixel colour and its squares": explained_variance(y, np.c_[rgb, rgb**2]),
            "category, category x coverage and pixel colour": explained_variance(
                y, np.c_[colour, colour * cov[:, None], rgb, rgb**2]
            ),
        }
    return pd.DataFrame(out)


def geometry_table(results: Path, sites: list[str], data: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    rgb = np.array(list(COLORS.values()), float)
    i, j = np.triu_indices(len(rgb), 1)
    geo, align = [], []
    for site in sites:
        x, meta = open_store(results, site, "interp")
        x = x.double().numpy()
        m = data.token_masks(meta)
        r, _, t = data.rows(meta)
        interior = data.coverage[r, t] >= INTERIOR
        for kind in (*data.object_kinds, "background"):
            lab = data.label(m, kind)
            keep = lab >= 0
            g = class_geometry(x[keep], lab[keep])
            row = {
                "site": site,
                "concept": kind,
                "values": g["classes"],
                "dims_95": g["dims_95"],
                "top-2 PCA shares": " / ".join(f"{v:.2f}" for v in g["pca_shares"][:2]),
                "separation": g["separation"],
            }
            if kind != "background":
                for part, sel in (("interior", interior), ("edge", ~interior)):
                    row[f"separation, {part} tokens"] = class_geometry(x[keep & sel], lab[keep & sel])["separation"]
                row["interior share"] = (keep & interior).sum() / keep.sum()
            if kind == "color":
                means = np.stack([x[lab == v].mean(0) for v in range(len(rgb))])
                row["colour means vs RGB (Spearman)"] = spearmanr(
                    np.linalg.norm(means[i] - means[j], axis=1), np.linalg.norm(rgb[i] - rgb[j], axis=1)
                )[0]
            geo.append(row)
            if kind in ("size", "background"):
                continue
            xk, lk = x[keep], lab[keep]
            plane = class_plane(xk, lk, rank=2)
            lda = discriminant_direction(xk, lk)[None]
            for name, dirs in (("class-mean plane, first axis", plane[:1]), ("discriminant (what a probe uses)", lda)):
                align.append(
                    {
                        "site": site,
                        "concept": kind,
                        "directions": name,
                        "best Fisher ratio": fisher_ratio(xk, lk, dirs)[0],
                        "its variance share": variance_share(xk, dirs)[0],
                    }
                )
            for name in ("sae", "itda", "random"):
                paths = sorted((results / "dictionaries" / site).glob(f"{name}*/dictionary.safetensors"))
                if not paths:
                    continue
                dirs = [load_dictionary(p).directions.double().numpy() for p in paths]
                shares = [subspace_share(d, plane) for d in dirs]
                fisher = [fisher_ratio(xk, lk, d) for d in dirs]
                best = [d[f.argmax()][None] for d, f in zip(dirs, fisher)]
                align.append(
                    {
                        "site": site,
                        "concept": kind,
                        "directions": f"{name} ({len(dirs)} runs)",
                        "best Fisher ratio": np.mean([f.max() for f in fisher]),
                        "its variance share": np.mean([variance_share(xk, d)[0] for d in best]),
                        "largest share in the plane": np.mean([s.max() for s in shares]),
                        "directions > 0.3 in the plane": np.mean([(s > 0.3).sum() for s in shares]),
                        "of": np.mean([len(s) for s in shares]),
                        "at random": 2 / x.shape[1],
                    }
                )
    return pd.DataFrame(geo), pd.DataFrame(align)


def interior_table(results: Path, sites: list[str], data: Split) -> pd.DataFrame:
    """The workflow run's dictionaries, within the kind, with edge tokens left out of the object
    concepts' masks (a diagnostic beside `concepts.csv`, not a replacement for it)."""
    pids = data.prompt_ids
    interior = data.masks.copy()
    interior[:, :, data.kinds != "background"] &= (data.coverage >= INTERIOR)[:, :, None]
    rows = []
    for site in sites:
        x, meta = open_store(results, site, "interp")
        for path in sorted((results / "dictionaries" / site).glob("*/dictionary.safetensors")):
            d = load_dictionary(path)
            codes = d.encode(x)
            for tokens, masks in (("all object tokens", data.masks), ("interior tokens only", interior)):
                tab = concept_recovery(
                    codes,
                    meta["prompt_id"],
                    meta["token"],
                    masks.reshape(len(masks), *data.grid, -1),
                    list(data.names),
                    d.n_features,
                    mask_prompt_ids=pids,
                )
                name = path.parent.name.split("-r")[0]
                rows.append({"site": site, "dictionary": name, "object tokens": tokens, **summary(tab)})
    tab = pd.DataFrame(rows)
    cols = [f"kind_{k}" for k in data.object_kinds]
    out = tab.groupby(["site", "object tokens", "dictionary"], sort=False)[cols].mean()
    out.insert(0, "runs", tab.groupby(["site", "object tokens", "dictionary"], sort=False).size())
    return out


# table 4's training data, in the order `training_variants` makes them (the last needs --inputs)
TRAINING_DATA = (
    "as captured (default)",
    "object tokens only (ground-truth selection)",
    "grid-position mean removed",
    "grid position and x_t regressed out",
    "whitened (ZCA)",
    "image mean removed (per image and step)",
    "one background at a time (ground-truth selection)",
    "block update (output - input)",
)


def training_variants(xt, mt, xi, mi, train: Split, interp: Split, inputs=None) -> dict:
    """name -> () -> parts for table 4, each part (training activations, interp activations,
    the interp rows it is scored on or None for all); a variant's score is its parts' mean.
    `inputs`: the (train, interp) stores of the block's input site, for the block-update variant."""
    obj = torch.from_numpy(train.token_masks(mt)[:, train.kinds != "background"].any(1))

    def design(meta, data: Split, with_latent: bool):
        steps, tokens = data.latents.shape[0], data.latents.shape[2]
        d = np.eye(steps * tokens)[meta["token"].to_numpy() + tokens * meta["step"].to_numpy()]
        return np.c_[d, data.x_t(meta), np.ones(len(meta))] if with_latent else np.c_[d, np.ones(len(meta))]

    def nuisance_removed(with_latent: bool):
        # fitted on the train split, applied to both: label-free, as it could be on real Flux
        a, b = design(mt, train, with_latent), design(mi, interp, with_latent)
        coef, *_ = np.linalg.lstsq(a, xt.double().numpy(), rcond=None)
        return (
            torch.from_numpy(xt.double().numpy() - a @ coef).float(),
            torch.from_numpy(xi.double().numpy() - b @ coef).float(),
        )

    def whitened():
        # ZCA with the train split's covariance: every direction gets unit variance, so a
        # low-variance discriminant weighs as much in the loss as the grid position does
        x = xt.double()
        mean = x.mean(0)
        w, v = torch.linalg.eigh(torch.cov((x - mean).T))
        zca = v @ torch.diag(w.clamp_min(1e-12 * w.max()) ** -0.5) @ v.T
        return ((x - mean) @ zca).float(), ((xi.double() - mean) @ zca).float()

    def image_mean_removed():
        # each (image, step)'s mean token subtracted (label-free): what the image shares, 30 % of
        # the object tokens' variance, no longer competes with what tells its tokens apart
        def centred(x, meta):
            key = torch.from_numpy(meta.groupby(["prompt_id", "step"], sort=False).ngroup().to_numpy())
            n = torch.zeros(int(key.max()) + 1).index_add_(0, key, torch.ones(len(key)))
            mean = torch.zeros(len(n), x.shape[1]).index_add_(0, key, x.float()) / n[:, None]
            return x.float() - mean[key]

        return centred(xt, mt), centred(xi, mi)

    def per_background():
        # one SAE per background, trained and scored on that background's images: an object
        # token's paint then mixes with one colour only, so each colour's tokens lie on one
        # segment from the background (the geometry concept_separation's "plane x coverage" plants)
        bt, bi = train.backgrounds()[train.rows(mt)[0]], interp.backgrounds()[interp.rows(mi)[0]]
        return [(xt[torch.from_numpy(bt == b)], xi[torch.from_numpy(bi == b)], bi == b) for b in np.unique(bt)]

    def update():
        # what the block writes (SDLens trains on these): the same rows, since token sampling
        # is seeded by (seed, prompt, step) whatever the site
        (bt, bmt), (bi, bmi) = inputs
        cols = ["prompt_id", "step", "token"]
        if not (bmt[cols].equals(mt[cols]) and bmi[cols].equals(mi[cols])):
            raise ValueError("the input site's stores hold other rows than the site's")
        return xt - bt, xi - bi

    def whole(make):
        return lambda: [(*make(), None)]

    makers = (
        whole(lambda: (xt, xi)),
        whole(lambda: (xt[obj], xi)),
        whole(lambda: nuisance_removed(False)),
        whole(lambda: nuisance_removed(True)),
        whole(whitened),
        whole(image_mean_removed),
        per_background,
        whole(update),
    )
    variants = dict(zip(TRAINING_DATA, makers, strict=True))
    if inputs is None:
        del variants[TRAINING_DATA[-1]]
    return variants


def train_table(
    results: Path,
    sites: list[str],
    model: Path,
    seeds: list[int],
    interp: Split,
    inputs: dict[str, str],
    only: list[str] | None = None,
) -> pd.DataFrame:
    """SAEs on changed training data, each beside random directions on the same data."""
    train = Split(results, "train", Annotator.load(model))
    names = list(interp.names)
    masks = interp.masks.reshape(len(interp.masks), *interp.grid, -1)
    pids = interp.prompt_ids
    objects = interp.kinds != "background"  # the concepts a one-background part is scored on
    rows = []
    for site in sites:
        xt, mt = open_store(results, site, "train")
        xi, mi = open_store(results, site, "interp")
        block_in = None
        if site in inputs:
            block_in = tuple(open_store(results, inputs[site], split) for split in ("train", "interp"))
        for variant, make in training_variants(xt, mt, xi, mi, train, interp, block_in).items():
            if only and variant not in only:
                continue
            parts = make()
            for method, cfg in (("sae", SAE), ("random", RANDOM)):
                for seed in seeds:
                    hp = {k: v for k, v in cfg.items() if k != "kind"} | {"seed": seed}
                    scores = []
                    for x_train, x_interp, scored in parts:
                        d = build(
                            cfg["kind"],
                            hp,
                            batches_of(x_train, hp.get("batch_size", 4096), seed),
                            d_model=x_train.shape[1],
                            progress=False,
                        )
                        m, img, keep = mi, np.ones(len(pids), bool), np.ones(len(names), bool)
                        if scored is not None:  # one background's images: the background is constant there
                            m, keep = mi[scored], objects
                            img = np.isin(pids, m["prompt_id"].to_numpy())
                        tab = concept_recovery(
                            d.encode(x_interp),
                            m["prompt_id"],
                            m["token"],
                            masks[img][..., keep],
                            [n for n, k in zip(names, keep) if k],
                            d.n_features,
                            mask_prompt_ids=pids[img],
                        )
                        scores.append(summary(tab))
                    rows.append(
                        {
                            "site": site,
                            "training data": variant,
                            "method": method,
                            "seed": seed,
                            "train tokens": sum(len(p[0]) for p in parts),
                            **pd.DataFrame(scores).mean().to_dict(),
                        }
                    )
                    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return pd.DataFrame(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/shapes"))
    ap.add_argument("--sites", nargs="+", default=["double1_img", "single1_img"])
    ap.add_argument("--model", type=Path, default=Path("resources/toy-shapes"), help="toy model (its annotator)")
    ap.add_argument("--train", action="store_true", help="also train the SAE variants of table 4 (~20 min on 2 cores)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument(
        "--inputs",
        nargs="*",
        default=[],
        metavar="SITE=INPUT_SITE",
        help="a site whose output is SITE's block input (double1_img=double0_img): adds the block-update variant",
    )
    ap.add_argument(
        "--variants", nargs="*", choices=TRAINING_DATA, metavar="NAME", help="table 4's training data (default: all)"
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/concept_geometry.md"))
    a = ap.parse_args()
    if a.train and TRAINING_DATA[-1] in (a.variants or ()) and not a.inputs:
        ap.error(f"'{TRAINING_DATA[-1]}' needs --inputs SITE=INPUT_SITE")
    torch.set_num_threads(2)
    interp = Split(a.results, "interp", Annotator.load(a.model))
    var = variance_table(a.results, a.sites, interp)
    geo, align = geometry_table(a.results, a.sites, interp)
    parts = [
        "## 1. What explains the object tokens' variance (R², interp split)",
        "",
        var.round(3).to_markdown(),
        "",
        "## 1b. What the colour plane holds (R² of object tokens' coordinates in the class-mean plane)",
        "",
        plane_table(a.results, a.sites, interp).round(3).to_markdown(),
        "",
        "## 2. Where the class means lie (object tokens; background: background tokens)",
        "",
        geo.round(2).to_markdown(index=False),
        "",
        "## 3. One direction: the discriminant, the class-mean plane and the dictionaries' best",
        "",
        align.round(3).to_markdown(index=False),
        "",
    ]
    parts += [
        "## 5. Within the kind on the tokens an object fully covers (workflow run's dictionaries)",
        "",
        interior_table(a.results, a.sites, interp).round(3).to_markdown(),
        "",
    ]
    if a.train:
        inputs = dict(pair.split("=", 1) for pair in a.inputs)
        tab = train_table(a.results, a.sites, a.model, a.seeds, interp, inputs, a.variants)
        cols = ["all", "core", "kind_all", "kind_color", "kind_shape", "kind_size"]
        agg = tab.groupby(["site", "training data", "method"], sort=False)[cols].mean().round(3)
        agg.insert(0, "runs", tab.groupby(["site", "training data", "method"], sort=False).size())
        parts += [
            "## 4. SAEs on changed training data, beside random directions on the same data",
            "",
            agg.to_markdown(),
            "",
        ]
    write_record(a.out, "How the shapes world's sites encode its concepts", parts)


if __name__ == "__main__":
    main()
