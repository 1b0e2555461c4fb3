"""How much does one training run decide the core check? A config's SAE trained with many seeds.

The core check asks every run of a site to reach a core token AUROC (colour, shape, background)
of 0.90. At double1 the default run's three score 0.876 / 0.901 / 0.892, and the lowest one's dark
background is split among three features where its siblings keep one
(`benchmarks/results/texture_world/concept_features.md`). This trains the default config's SAE on a
site's train split with `--seeds` seeds (the benchmarks' own batching, as `concept_sweep.py`, so
seed s is not the workflow's replicate s) and scores each as `concepts.csv` does (held-out token
AUROC of the best feature, over all tokens), beside random directions of the same seeds; for each
run it also reports how much of the dark and light backgrounds' tokens their best feature covers
(over all interp tokens, `concept_features.concept_rows`).

Question and rule, fixed before the run (2026-12-06, 18:43 UTC): at double1, if a single run
reaches 0.90 with probability p, three runs all do with p^3. Prediction: p is between 1/3 and
2/3 (the default's 2 of 3 and the other configs' 0-1 of 3 at double1), so the "every run" check
passes by seed luck at most ~30 % of the time; and the runs whose best dark feature covers less
than 60 % of dark tokens are among the lowest third of core scores. Either outcome is recorded.

Second question, fixed before its runs (2026-12-06, 20:21 UTC): is BatchTopK's and Matryoshka's
pass of double1's core check a property of the method or of three lucky seeds? Their workflow runs
at double1 (default and other prompt sets and seed sets: BatchTopK 15 of 18 runs at >= 0.90, range
0.885-0.912; Matryoshka 6 of 9, 0.891-0.912) predict, under the same batching as the SAE's 12
seeds: BatchTopK's p between 1/2 and 1 and Matryoshka's between 1/3 and 1, both above the SAE's
0.25; both with a narrower double1 range than the SAE's 0.783-0.903 (max - min < 0.06); at single1
p = 0 for both (their best workflow run 0.893); BatchTopK's mean margin over all concepts at single1
above the SAE's 0.063 by >= 0.04 (workflow: 0.154 against 0.083). Either outcome is recorded.

Third question, fixed before its runs (2026-12-06, 20:46 UTC): the benchmarks' batching gave
Matryoshka at double1 4 of 12 runs at >= 0.90 and 8 that lose colour and shape (0.827-0.882),
while the workflow's three runs on the default config scored 0.912 / 0.891 / 0.912. Is that the
batching (concept_sweep's global permutation seeded 1000 s + e, against train_on_store's
chunk-buffered shuffle seeded s + e) or luck? `--workflow-batches` trains on train_on_store's own
batches, so seeds 0-2 are the workflow's replicates. Predictions: seeds 0-2 reproduce the
workflow's runs' core values within 0.002, for the SAE (0.876 / 0.901 / 0.892) and for Matryoshka;
and the batching is not what separates them — over 12 seeds the share of runs at >= 0.90 stays
within 1/6 of the benchmarks' batching's (SAE 0.25, Matryoshka 0.33). Either outcome is recorded.

Fourth question, fixed before its runs (2026-12-06, 20:56 UTC): what is the mode in which a run
loses colour and shape (either below 0.90 at double1: Matryoshka 7 of 12, the SAE 1 or 4 of 12,
BatchTopK none)? Over all tokens a colour or shape concept is scored mostly as foreground (the
sweep's `object` column), so the hypothesis is a lost foreground detector. Each run now also
reports `object` (held-out token AUROC of the best feature for "an object covers this token",
`concept_sweep.OBJECT`) and `shared` (the most concepts sharing one best feature). Prediction, on
the workflow's batches at double1 for the SAE, Matryoshka and BatchTopK: every run that loses
colour or shape has a lower `object` score than every run that keeps both, within each method;
the records written before this question lack the two columns. Either outcome is recorded.

Fifth question, fixed before its runs (2026-12-06, 21:09 UTC), after the fourth's answer (every run
that loses colour or shape has the lower `object` score: SAE 0.767-0.949 against 0.978-0.981,
Matryoshka 0.717-0.908 against 0.975-0.981, BatchTopK 0.981-0.982 in every run and no run lost):
do those runs also lose the colours and shapes themselves, or only the foreground detector that
the all-token score reads? Each run now also reports `kind_color` and `kind_shape` (within the
concept's kind: the object tokens of the other colours or shapes as negatives). Prediction: the
runs that lose colour or shape over all tokens score within 0.03 of the other runs' mean within
the kind (the mode is the foreground detector alone). Either outcome is recorded.

Sixth question, fixed before its runs (2026-12-06, 23:03 UTC), after the fifth's answer (the runs
that lose colour or shape keep them within the kind; what they lose is the foreground feature):
where did the foreground go — is it split among features along one concept, or missing? Each run
now also reports, for its best `object` feature (by token AUROC over all interp tokens, a
diagnostic): `obj coverage` (share of object tokens it fires on), `obj union3` (the top three
object features together) and, per kind, `obj spread <kind>` (max - min of its coverage over the
kind's values; a background value is the image's, for the object tokens on it), with `obj split
by` the kind of largest spread. Prediction, on the workflow's batches at double1: in every SAE and
Matryoshka run with `object` < 0.95 the best object feature is split along one kind (largest
spread >= 0.4), that kind is background in most of them, and the top three cover >= 0.9 of object
tokens (split, not missing); in every run with `object` >= 0.97 (BatchTopK's all) every spread is
< 0.2. Either outcome is recorded.

Seventh question, fixed before its runs (2026-12-06, 23:09 UTC), after the sixth's answer for the
SAE (its prediction failed: in the four runs with `object` < 0.95 the best object feature fires on
0.59-0.92 of object tokens, its coverage spreads by at most 0.21 over any concept's values
(background's the largest in three), and the top three cover 0.77-0.94 — neither split along a
concept nor wholly missing): which object tokens does it miss? Two candidates outside the concepts:
the capture step (the site pools two denoising steps; a one-step foreground feature covers about
half) and the token's place on the object (edge tokens, which the object covers in part, against
interior ones it covers >= 95 %, `concept_geometry.INTERIOR`). Each run now also reports `obj spread
step` and `obj spread interior`. Prediction, on the workflow's batches at double1: in every SAE and
Matryoshka run with `object` < 0.95 the spread over steps is >= 0.3 and larger than the spread
between edge and interior tokens; in every run with `object` >= 0.97 both are < 0.1. Either outcome
is recorded.

Eighth question, fixed before its runs (2026-12-06, 23:25 UTC), after the sixth's and seventh's
answers (the workflow's batches, double1). Sixth: failed. The lost foreground is split rather than
missing in every Matryoshka run that loses it (the top three cover 0.95-0.99 of object tokens) and
in three of the SAE's four (0.91-0.94; seed 10's 0.77), but along one concept (spread >= 0.4) only
in two Matryoshka runs (colour 0.53 and background 0.50 as largest). Seventh: held for the SAE in
three of its four runs (step spreads 0.71, 0.43, 0.31; 0.14 in the fourth, `object` 0.949; the step's
the largest spread in all four), failed for Matryoshka (one of seven >= 0.3, 0.46; edge against
interior larger in three); every run with `object` >= 0.97, BatchTopK's twelve included, < 0.1 on
both. An ad hoc look (not recorded) at the SAE's seeds 10 and 3: their best object feature fires
on step 1's object tokens (0.94, 1.00) and few of step 0's (0.23, 0.57). Question: does a
dictionary trained on one capture step keep the foreground feature that pooled runs lose? `--step
s` trains and scores on step s alone (the benchmarks' batching: the workflow's is over the pooled
store; half the tokens). Prediction, at double1 with 12 seeds: at each step the runs with `object`
< 0.95 are at most 3 for Matryoshka (pooled: 7 of 12 on the workflow's batches; 7 of 12 lose colour
and shape on either batching) and at most 2 for the SAE (pooled: 4 of 12 on the workflow's
batches). Either outcome is recorded.

Ninth question, fixed before its runs (2026-12-06, 23:35 UTC): is BatchTopK's foreground feature,
kept in all its 12 runs, bought by the larger budget it gives object tokens? An ad hoc count on its
seed 0 (workflow's batches, double1, not recorded): 12.8 and 9.6 active latents per object token at
steps 0 and 1, 9.1 and 6.0 per background token (average k 8). If the budget is the reason, the
TopK SAE with k 12 (about what BatchTopK gives object tokens) or 16 keeps it too. Prediction, on
the workflow's batches at double1 (`benchmarks/sae_k12.yaml`, `sae_k16.yaml`): at most 1 of 12 runs
with `object` < 0.95 at each k (k 8: 4 of 12). Either outcome is recorded.

Tenth question, fixed before its runs (2026-12-06, 23:47 UTC), after the ninth's answer (held: k 12
loses the foreground in none of 12 runs at double1, k 16 in one; k 12 passes double1's core check in
7 of 12): does k 12 help at single1, where no setting has a foreground feature (`concept_sweep.md`)
and the core check fails on shape and background? Prediction, on the workflow's batches at single1
for k 8 and k 12: no run reaches 0.90 at either k, and k 12's mean core and mean margin over all
concepts are within 0.03 of k 8's. Either outcome is recorded.

Eleventh question, fixed before its runs (2026-12-07, 00:05 UTC), after the tenth's answer: k 12's
margins are measured against random directions at k 8 (`concept_sweep.RANDOM`, the workflow's
`random` entry). Does the baseline's own k move them? `--random-k 12` gives random directions the
SAE's k. Prediction, on the workflow's batches at double1 with the SAE at k 12: random directions'
mean over all concepts at k 12 is within 0.03 of theirs at k 8 (0.790 over the same 12 seeds), so the
margin stays between 0.09 and 0.15. Either outcome is recorded.

Twelfth question, fixed before its runs (2026-12-07, 01:45 UTC), after the eleventh's answer (failed
narrowly: random directions gain 0.035 from k 8 to 12, so k 12's margin over random directions of its
own k is 0.086 against k 8's 0.088): is the margin over random directions of the same k flat in k, so
that no k buys the margin check (>= 0.15) on this world? Prediction, on the workflow's batches at
double1 with `--random-k` equal to the SAE's k: at k 16 and k 24 (`benchmarks/sae_k16.yaml`,
`sae_k24.yaml`) the mean margin over all concepts is within 0.03 of 0.087 (between 0.057 and 0.117);
at k 4 (`sae_k4.yaml`), where the foreground feature splits (`concept_sweep.md`), it is below k 8's
(under 0.088). Either outcome is recorded.

Thirteenth question, fixed before its runs (2026-12-07, 02:28 UTC), after the twelfth's answer (the TopK
SAE's margin over random directions of its own k peaks at k 8-12, +0.088 / +0.086, and falls on both
sides; random directions score 0.722 at k 4 and climb with k): BatchTopK, the closest to the margin
check (+0.123 at mean k 8 on the workflow's batches), spends its budget where tokens need it. Does a
smaller mean budget, where random directions are weaker, let it keep its foreground feature and so
widen its margin to 0.15? Prediction, on the workflow's batches at double1 with `--random-k` equal to
its mean k (`benchmarks/batch_topk_k{4,6,12}.yaml`: `batch_topk.yaml`'s entry with another k): its
margin peaks at mean k 8 as the TopK SAE's does: at k 4 and 6 below 0.123, with at least 6 of 12 runs
losing the foreground feature (`object` < 0.95) at k 4; at k 12 below 0.123; at no k 0.15 or more.
Either outcome is recorded.

Fourteenth question, fixed before its run (2026-12-07, 02:38 UTC), after the thirteenth's k-4 answer
(failed: at mean k 4 BatchTopK keeps its foreground feature in 11 of 12 runs, scores 0.900 over all
concepts against random directions' 0.722 at k 4, margin +0.178, 9 of 12 seeds at 0.15 or more; core
0.862-0.897, no run at 0.90): what do the workflow's eight checks say with BatchTopK at mean k 4 and
random directions at k 4 (`benchmarks/batch_topk_k4.yaml` + `random_k4.yaml`, from a copy of the
default run; `batch_topk_k4_checks.md`)? Known before the run, as seeds 0-2 are the workflow's
replicates: double1's margin passes (about +0.18) and its core check fails (0.888). Predicted: at single1
the margin passes too (random directions lose as much at k 4 there) and the core check fails (BatchTopK
reached 0.90 there in no run at k 8); the image question separates at both sites, the token question at
neither (BatchTopK at k 8: the same). Either outcome is recorded.

    .venv/bin/python benchmarks/seed_spread.py --results results/toy \\
        --out benchmarks/results/texture_world/seed_spread.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy \\
        --config config/config.yaml benchmarks/batch_topk.yaml --dictionary batchtopk \\
        --out benchmarks/results/texture_world/seed_spread_batchtopk.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy \\
        --config config/config.yaml benchmarks/matryoshka.yaml --dictionary matryoshka \\
        --out benchmarks/results/texture_world/seed_spread_matryoshka.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml --dictionary sae --out benchmarks/results/texture_world/seed_spread_workflow.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/matryoshka.yaml --dictionary matryoshka \\
        --out benchmarks/results/texture_world/seed_spread_workflow_matryoshka.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/batch_topk.yaml --dictionary batchtopk \\
        --out benchmarks/results/texture_world/seed_spread_workflow_batchtopk.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --step 0 \\
        --config config/config.yaml benchmarks/matryoshka.yaml --dictionary matryoshka \\
        --out benchmarks/results/texture_world/seed_spread_step0_matryoshka.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --step 1 \\
        --config config/config.yaml benchmarks/matryoshka.yaml --dictionary matryoshka \\
        --out benchmarks/results/texture_world/seed_spread_step1_matryoshka.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --step 0 \\
        --out benchmarks/results/texture_world/seed_spread_step0.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --step 1 \\
        --out benchmarks/results/texture_world/seed_spread_step1.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k12.yaml --dictionary sae \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k12.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k16.yaml --dictionary sae \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k16.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites single1_img --workflow-batches \\
        --config config/config.yaml --dictionary sae \\
        --out benchmarks/results/texture_world/seed_spread_workflow_single1.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites single1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k12.yaml --dictionary sae \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k12_single1.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k12.yaml --dictionary sae --random-k 12 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k12_random_k12.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k4.yaml --dictionary sae --random-k 4 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k4_random_k4.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k16.yaml --dictionary sae --random-k 16 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k16_random_k16.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/sae_k24.yaml --dictionary sae --random-k 24 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_k24_random_k24.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/batch_topk_k4.yaml --dictionary batchtopk --random-k 4 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_batchtopk_k4_random_k4.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/batch_topk_k6.yaml --dictionary batchtopk --random-k 6 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_batchtopk_k6_random_k6.md
    .venv/bin/python benchmarks/seed_spread.py --results results/toy --sites double1_img --workflow-batches \\
        --config config/config.yaml benchmarks/batch_topk_k12.yaml --dictionary batchtopk --random-k 12 \\
        --out benchmarks/results/texture_world/seed_spread_workflow_batchtopk_k12_random_k12.md
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

import config_dictionary  # noqa: E402
from concept_features import concept_rows  # noqa: E402
from concept_geometry import INTERIOR, Split  # noqa: E402
from concept_sweep import RANDOM, batches_of, load, summary, with_object_label  # noqa: E402
from record import write_record  # noqa: E402

from diffdict.dictionaries import build  # noqa: E402
from diffdict.dictionaries.factory import training_batches  # noqa: E402
from diffdict.metrics.concepts import concept_recovery  # noqa: E402
from diffdict.store import ActivationStore  # noqa: E402
from diffdict.world.annotate import Annotator  # noqa: E402
from diffdict.world.scene import concept_kind  # noqa: E402

THRESHOLD = 0.90  # the core check's, issue 14


def coverage(z: np.ndarray, masks: np.ndarray, names: list[str], concept: str) -> float:
    """Share of `concept`'s tokens (`masks` [N, C]) its best feature (by token AUROC over codes
    `z` [N, F]) fires on."""
    return concept_rows(z, masks[:, names.index(concept)], 1)[0]["coverage"]


def object_split(
    z: np.ndarray,
    per_token: np.ndarray,
    per_image: np.ndarray,
    names: list[str],
    groups: dict[str, np.ndarray] | None = None,
    top: int = 3,
) -> dict:
    """Where a run's foreground feature fires: the best `object` feature's coverage of object tokens,
    the top `top` features' union, and the spread (max - min) of its coverage over each kind's values
    (`per_token` masks [N, C]; `per_image` [N, C]: the token's image has the concept, which places
    object tokens on their image's background) and over each of `groups`' per-token labels [N]."""
    kinds = concept_kind(pd.Series(names)).to_numpy()
    obj = per_token[:, kinds != "background"].any(1)
    rows = concept_rows(z, obj, top)
    on = z[:, rows[0]["feature"]] > 0
    out = {"obj coverage": rows[0]["coverage"], f"obj union{top}": rows[0][f"union of top {top}, coverage"]}
    parts = {kind: (per_image if kind == "background" else per_token)[:, kinds == kind] for kind in kinds}
    parts |= {name: label[:, None] == np.unique(label) for name, label in (groups or {}).items()}
    for name, values in parts.items():
        cov = [on[v].mean() for v in (values & obj[:, None]).T if v.sum() >= 20]  # a few tokens say nothing
        out[f"obj spread {name}"] = max(cov) - min(cov) if len(cov) > 1 else np.nan
    spreads = {k.removeprefix("obj spread "): v for k, v in out.items() if k.startswith("obj spread")}
    out["obj split by"] = max(spreads, key=lambda k: np.nan_to_num(spreads[k], nan=-1))
    return out


def run_site(
    results: Path,
    site: str,
    dictionary: tuple[str, dict],
    seeds: list[int],
    split: Split,
    workflow_batches: bool = False,
    step: int | None = None,
    random: dict = RANDOM,
) -> list[dict]:
    train = results / "activations" / site / "train.zarr"
    xt, mt = load(train)
    xi, mi = load(results / "activations" / site / "interp.zarr")
    if step is not None:  # one capture step: its rows of both splits
        if step not in set(mt["step"]):
            raise SystemExit(f"--step {step}: {site} captured steps {sorted(set(mt['step']))}")
        xt = xt[torch.from_numpy(mt["step"].to_numpy() == step)]
        keep = mi["step"].to_numpy() == step
        xi, mi = xi[torch.from_numpy(keep)], mi[keep].reset_index(drop=True)
    ann = np.load(results / "annotations" / "interp.npz")
    names = [str(c) for c in ann["concepts"]]
    labels, label_names = with_object_label(ann["token_masks"], names)  # concepts + the object label
    rs, steps, t = split.rows(mi)
    per_token = split.token_masks(mi)  # [N, C], the same annotator's masks as `ann`'s
    per_image = split.masks.any(1)[rs]  # [N, C]: the token's image has the concept
    groups = {"step": steps, "interior": split.coverage[rs, t] >= INTERIOR}
    rows = []
    for method, cfg in (dictionary, ("random", random)):
        for seed in seeds:
            hp = {k: v for k, v in cfg.items() if k != "kind"} | {"seed": seed}
            batch = hp.get("batch_size", 4096)
            batches = (
                training_batches(ActivationStore.open(train), batch, seed)
                if workflow_batches
                else batches_of(xt, batch, seed)
            )
            d = build(cfg["kind"], hp, batches, xt.shape[1], progress=False)
            codes = d.encode(xi)
            tab = concept_recovery(
                codes, mi["prompt_id"], mi["token"], labels, label_names, d.n_features, ann["prompt_id"]
            )
            s = summary(tab)
            row = {"site": site, "method": method, "seed": seed, "core": s["core"], "all": s["all"]}
            row |= {k: s[k] for k in ("color", "shape", "background", "object", "shared", "kind_color", "kind_shape")}
            z = codes.to_dense(d.n_features).numpy()
            for bg in ("background=dark", "background=light"):
                row[f"{bg} best coverage"] = coverage(z, per_token, names, bg)
            row |= object_split(z, per_token, per_image, names, groups)
            rows.append(row)
            print(row, flush=True)
    return rows


def table(df: pd.DataFrame) -> pd.DataFrame:
    sae = df[df.method != "random"]
    out = sae.groupby("site", sort=False).agg(
        runs=("core", "size"),
        core_mean=("core", "mean"),
        core_min=("core", "min"),
        core_max=("core", "max"),
        p_run_passes=("core", lambda c: (c >= THRESHOLD).mean()),
    )
    out["p_three_pass (p^3)"] = out["p_run_passes"] ** 3
    out["random core_mean"] = df[df.method == "random"].groupby("site", sort=False)["core"].mean()
    out["margin (all) mean"] = (
        sae.groupby("site", sort=False)["all"].mean()
        - df[df.method == "random"].groupby("site", sort=False)["all"].mean()
    )
    return out.reset_index()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/toy"))
    config_dictionary.add_arguments(ap)
    ap.add_argument("--sites", nargs="+", default=["double1_img", "single1_img"])
    ap.add_argument("--model", type=Path, default=Path("resources/toy-textures"), help="toy model (its annotator)")
    ap.add_argument("--seeds", type=int, default=12, help="seeds 0 .. N-1")
    ap.add_argument(
        "--workflow-batches",
        action="store_true",
        help="train_on_store's batches (seed s is then the workflow's replicate s), not concept_sweep's",
    )
    ap.add_argument("--step", type=int, help="train and score on this capture step alone (default: all, pooled)")
    ap.add_argument("--random-k", type=int, default=RANDOM["k"], help="random directions' k (default: the workflow's)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/texture_world/seed_spread.md"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    dictionary = config_dictionary.resolve(ap, a)
    if a.step is not None and a.workflow_batches:
        ap.error("--step needs the benchmarks' batching: --workflow-batches shuffles the pooled store")
    split = Split(a.results, "interp", Annotator.load(a.model))
    rows = []
    for site in a.sites:
        rows += run_site(
            a.results,
            site,
            dictionary,
            list(range(a.seeds)),
            split,
            a.workflow_batches,
            a.step,
            RANDOM | {"k": a.random_k},
        )
    df = pd.DataFrame(rows)
    runs = df.sort_values(["site", "method", "core"]).round(3).to_markdown(index=False)
    body = [*about(df, a.dictionary, a.random_k), "", table(df).round(3).to_markdown(index=False), "", runs, ""]
    write_record(a.out, title(a.dictionary, a.config), body, df)


def title(dictionary: str, configs: list[Path]) -> str:
    if dictionary == "sae" and [str(c) for c in configs] == ["config/config.yaml"]:
        who = "The default SAE"
    else:
        who = f"`{dictionary}` of {' + '.join(f'`{c}`' for c in configs)}"
    return f"{who} trained with many seeds: how much one run decides the core check"


def about(df: pd.DataFrame, dictionary: str, random_k: int) -> list[str]:
    """The record's key to its columns (those `df` has: records from before the object columns lack them)."""
    objects = "obj coverage" in df.columns
    lines = [
        f"Per site: `{dictionary}`'s core token AUROC (colour, shape, background; held-out, as `concepts.csv`),",
        f"the share of runs reaching {THRESHOLD} and the chance that three independent runs all do (p^3),",
        f"random directions' (k {random_k}) mean and the mean margin over all concepts. Per run (the CSV and the",
        "second table): the kinds' means and how much of the dark and light backgrounds their best feature covers"
        + (";" if objects else "."),
    ]
    key = [
        '`object` scores the concept-free label "an object covers this token", `shared` counts the concepts',
        "whose best feature is one and the same, `kind_*` are within the kind; where the best `object` feature",
        "fires: its share of object tokens (`obj coverage`), the top three's union (`obj union3`), the spread",
        "(max - min) of its coverage over each kind's values, the capture steps and edge against interior",
        "tokens (`obj spread *`, values with >= 20 object tokens), and the largest of those (`obj split by`).",
    ]
    return [*lines, *key] if objects else lines


if __name__ == "__main__":
    main()
