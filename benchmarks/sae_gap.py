"""What separates diffdict's TopK SAE from sparsify's on bench_sae's data, and why the initial
encoder scale's lead lasts there but not on the toy.

Trains on `bench_sae.py`'s synthetic data (its planted atoms known) at its long setting, for
several seeds: diffdict with its defaults (`normalize: scalar`, the peers' objective), and with
one difference from sparsify's trainer removed at a time (the encoder's initial scale; the
gradient clip; Adam's epsilon; the learning rate decaying over every step instead of the last
20 %; the input normalisation; AuxK's normaliser, what it reaches, or AuxK itself; the initial rows' distribution;
several together; every variant keeps the Gaussian rows that were diffdict's default until stop 36
unless it names the distribution), beside sparsify itself and sparsify with one of diffdict's choices in turn
(b_dec's init; no AuxK; diffdict's initial weights at the same seed, or only their Gaussian
directions; its schedule). Per run: held-out FVU, the training FVU at step 256 (bench_sae's
default length), the fraction of latents dead (each trainer's AuxK count) at step 512 and at the
end, the latents that fire on the held-out split, how many latents died and revived along the
way (diffdict's log), and how close the live latents' decoder directions come to the planted
atoms (as they appear in the data, massive dimensions scaled):
the mean over atoms of the best cosine, and the atoms with one above 0.9. Needs sparsify in the
interpreter's environment (`make .venv/.peers`, or the `.venv-bench` of benchmarks/README.md):

    .venv/bin/python benchmarks/sae_gap.py --variants init1 init577 sparsify --seeds 0 1 2 \\
        --out benchmarks/results/sae_gap
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import pandas as pd
import torch
from bench_sae import ROOT, batches, diffdict_config, fvu, make_data, parser, planted_world, train_sparsify

from diffdict.atomic import write_table, write_text
from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.train_sae import train_sae

INIT577 = {"encoder_init_norm": 3**-0.5}  # sparsify's nn.Linear row norm, 1/sqrt(3)
# the study starts from diffdict's trainer as it was before stop 36 flipped `init_distribution` to uniform
# (the flip is this study's outcome), so every variant keeps Gaussian rows unless it names the distribution,
# and AuxK's gradient reaches b_dec (`auxk_grad: all`, the default until 2026-12-06) unless it names that
STUDY_BASE = {"init_distribution": "normal", "auxk_grad": "all"}
ALL = {**INIT577, "grad_clip": 1e9, "eps": 1e-8, "lr_decay_frac": 1.0}  # sparsify's optimiser settings too
# each diffdict variant: the settings that differ from diffdict's own trainer
VARIANTS = {
    "init1": ({}, "diffdict as bench_sae runs it (encoder rows = unit decoder rows)"),
    "init577": (INIT577, "encoder rows at sparsify's nn.Linear norm, 1/sqrt(3)"),
    "noclip": ({"grad_clip": 1e9}, "no gradient clip (sparsify has none)"),
    "eps1e-8": ({"eps": 1e-8}, "Adam's default epsilon (sparsify's)"),
    "decay_all": ({"lr_decay_frac": 1.0}, "lr decays linearly over every step after warm-up (sparsify's schedule)"),
    "kaux128": ({"k_aux": 128}, "AuxK trains 128 = d/2 dead latents per token (Gao et al.'s heuristic, sparsify's)"),
    "init577_kaux128": ({**INIT577, "k_aux": 128}, "init577 and kaux128"),
    "all": (ALL, "init577, noclip, eps1e-8 and decay_all together"),
    "raw": (
        {"normalize": "none"},
        "the raw activations, neither centred nor scaled (sparsify's input; b_dec still starts at their geometric "
        "median, sparsify's at the first batch's mean)",
    ),
    "noauxk": ({"auxk_coef": 0.0}, "no AuxK loss (its only parameter shared with the live latents is b_dec)"),
    "all_noauxk": ({**ALL, "auxk_coef": 0.0}, "all and noauxk together"),
    "auxk_total": ({"auxk_normalizer": "total"}, "AuxK divided by the batch's total variance (sparsify's)"),
    "init577_auxk_total": ({**INIT577, "auxk_normalizer": "total"}, "init577 and auxk_total"),
    "all_raw": ({**ALL, "normalize": "none"}, "all and raw together"),
    "uniform": (
        {"init_distribution": "uniform"},
        "initial rows' entries uniform on [-1, 1] before normalising (nn.Linear's, sparsify's), not Gaussian",
    ),
    "init577_uniform": ({**INIT577, "init_distribution": "uniform"}, "init577 and uniform"),
    # what diffdict's AuxK reaches (auxk_grad), from the uniform rows that are diffdict's default since 2026-12-05
    "uniform_noauxk": ({"init_distribution": "uniform", "auxk_coef": 0.0}, "uniform and noauxk"),
    "uniform_auxk_latents": (
        {"init_distribution": "uniform", "auxk_grad": "latents"},
        "uniform; AuxK trains the dead latents' own parameters only, not b_dec (`auxk_grad: latents`)",
    ),
    "uniform_auxk_decoder": (
        {"init_distribution": "uniform", "auxk_grad": "decoder"},
        "uniform; AuxK trains the dead latents' decoder rows only, as sparsify 1.3.3's does (`auxk_grad: decoder`)",
    ),
    # uniform_auxk_latents is diffdict's default trainer since 2026-12-06; BatchTopK beside it
    "uniform_auxk_latents_batch_topk": (
        {"init_distribution": "uniform", "auxk_grad": "latents", "batch_topk": True},
        "uniform_auxk_latents with BatchTopK (`batch_topk: true`: the batch keeps k per token on average; "
        "held-out codes from the learnt threshold)",
    ),
}
# sparsify, and sparsify with one change (b_enc starts at zero in both): train_sparsify's options, description
PEERS = {
    "sparsify": ({}, "sparsify's SparseCoder and Trainer steps (bench_sae.run_sparsify)"),
    "sparsify_gm": ({"b_dec_median": True}, "sparsify, b_dec at the first batch's geometric median (diffdict's)"),
    "sparsify_noauxk": ({"auxk": False}, "sparsify without its AuxK loss"),
    "sparsify_noauxk_init": (
        {"auxk": False, "diffdict_init": True},
        "sparsify_noauxk from diffdict's initial weights at the same seed (`all`'s: Gaussian unit decoder rows, "
        "encoder = 1/sqrt(3) x decoder^T; sparsify draws nn.Linear's uniform rows)",
    ),
    "sparsify_noauxk_sphere": (
        {"auxk": False, "sphere_init": True},
        "sparsify_noauxk with Gaussian directions (uniform on the sphere, like diffdict's) drawn from its own "
        "generator, each row at the norm of the nn.Linear row it replaces",
    ),
    "sparsify_noauxk_sched": (
        {"auxk": False, "diffdict_schedule": True},
        "sparsify_noauxk with `all`'s learning-rate schedule (warm-up factor (step+1)/50, linear decay over every "
        "step from step 0; sparsify's: step/50, decay from the end of warm-up)",
    ),
    "sparsify_noauxk_both": (
        {"auxk": False, "diffdict_init": True, "diffdict_schedule": True},
        "sparsify_noauxk_init and sparsify_noauxk_sched together: sparsify's trainer with all_noauxk's initial "
        "weights, schedule and data order (its gradients equal diffdict's on the same weights and batch)",
    ),
}
COSINE = 0.9
COLUMNS = {  # markdown columns after the held-out FVU, with their formats
    "l0_on_test": ".2f",
    "train_fvu_step256": ".4f",
    "dead_step512": ".3f",
    "dead_end": ".3f",
    "alive_on_test": ".0f",
    "died": ".0f",
    "revived": ".0f",
    "atoms_mean_cos": ".3f",
    "atoms_recovered": ".0f",
}


def data_args(tokens: int) -> argparse.Namespace:
    """bench_sae's defaults, at ``tokens`` training tokens."""
    return parser().parse_args(["--tokens", str(tokens)])


def run_diffdict(train, a, seed: int, settings: dict):
    """-> (live-latent indices of x, reconstruction of x, unit decoder directions, log rows) of a diffdict
    SAE trained like bench_sae's; `run_peer` returns the same for sparsify."""
    cfg = diffdict_config(a, log_every=32, seed=seed, **{**STUDY_BASE, **settings})
    rows = []
    sae = train_sae(
        lambda e: batches(train, 4096, e), train.shape[1], cfg, progress=False, callback=lambda s, r: rows.append(r)
    )

    def encode(x):
        c = sae.encode(x)
        return c.indices[c.values > 0]

    return encode, lambda x: sae.decode(sae.encode(x)), sae.directions, rows


def diffdict_initial(d: int, n: int, seed: int) -> TopKSAE:
    """The weights train_sae starts `all` from at ``seed``: Gaussian unit decoder rows, encoder rows
    1/sqrt(3) x those (b_dec, set from the data, left at 0)."""
    sae = TopKSAE(d, n, 1)
    sae.init_weights(torch.zeros(d), torch.Generator().manual_seed(seed), INIT577["encoder_init_norm"], "normal")
    return sae


def sphere_rows(sae) -> None:
    """Gaussian (uniform on the sphere) directions from sparsify's generator, each encoder row keeping the
    norm of the nn.Linear row it replaces; the decoder's rows the same directions at unit norm."""
    w = torch.randn_like(sae.encoder.weight)
    w /= w.norm(dim=1, keepdim=True)
    sae.encoder.weight.copy_(w * sae.encoder.weight.norm(dim=1, keepdim=True))
    sae.W_dec.copy_(w)


def run_peer(train, a, seed: int, options: dict):
    torch.manual_seed(seed)  # sparsify draws its init from the global generator
    options, rows = dict(options), []
    if options.pop("diffdict_init", False):
        init = diffdict_initial(train.shape[1], a.width, seed)
        options["init"] = lambda sae: (sae.encoder.weight.copy_(init.W_enc), sae.W_dec.copy_(init.W_dec))
    if options.pop("sphere_init", False):
        options["init"] = sphere_rows
    if options.pop("diffdict_schedule", False):
        cfg = diffdict_config(a, **ALL)
        options["lr_lambda"] = lambda step: cfg.lr_at(step) / cfg.lr_value
    sae = train_sparsify(train, a, rows=rows, **options)

    def encode(x):
        out = sae.encode(x)
        return out.top_indices[out.top_acts > 0]

    w = sae.W_dec.detach()
    return encode, lambda x: sae(x).sae_out, w / w.norm(dim=1, keepdim=True), rows


def measure(name: str, seed: int, train, test, atoms, a) -> dict:
    t = time.perf_counter()
    if name in PEERS:
        encode, recon, directions, rows = run_peer(train, a, seed, PEERS[name][0])
    else:
        encode, recon, directions, rows = run_diffdict(train, a, seed, VARIANTS[name][0])
    with torch.no_grad():
        alive = torch.zeros(a.width, dtype=torch.bool)
        active = encode(test)
        alive[active] = True
        best = (atoms @ directions[alive].T).max(1).values
        held_out = fvu(recon, test)
        l0 = active.numel() / len(test)  # active latents per held-out token (k, or about k: BatchTopK)
    at = {r["step"]: r for r in rows}
    return {
        "variant": name,
        "seed": seed,
        "fvu": held_out,
        "l0_on_test": l0,
        "train_fvu_step256": at[256]["fvu"] if 256 in at else float("nan"),
        "dead_step512": at[512]["dead_fraction"] if 512 in at else float("nan"),
        "dead_end": rows[-1]["dead_fraction"] if rows else float("nan"),
        "alive_on_test": int(alive.sum()),
        # latents that changed dead state, summed over the log rows (diffdict's trainer only)
        "died": sum(r.get("died", float("nan")) for r in rows),
        "revived": sum(r.get("revived", float("nan")) for r in rows),
        "atoms_mean_cos": float(best.mean()),
        "atoms_recovered": int((best > COSINE).sum()),
        "wall_s": time.perf_counter() - t,
    }


def markdown(df: pd.DataFrame, a, cmd: str) -> str:
    means = df.groupby("variant", sort=False).mean(numeric_only=True)
    out = [
        "# The TopK SAE beside sparsify's, one difference at a time",
        "",
        f"Command: `{cmd}`",
        "",
        f"Data: bench_sae's synthetic planted dictionary ({a.n_atoms} atoms, d={a.d}); width {a.width}, k {a.k}, "
        f"batch {a.batch}, {a.tokens:,} tokens ({a.tokens // a.batch} steps), lr {a.lr}, a latent is dead after "
        f"{a.dead_tokens:,} tokens without firing. Mean over the seeds; each seed's value in the .csv.",
        "",
        "| variant | seeds | held-out FVU | active latents per token (held-out) | training FVU, step 256 "
        "| dead, step 512 | dead, end | live latents (held-out) | died (log rows) | revived (log rows) "
        f"| atoms: mean best cosine | atoms recovered (cos > {COSINE}) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in means.iterrows():
        n = int((df["variant"] == name).sum())
        fvus = " / ".join(f"{v:.4f}" for v in df.loc[df["variant"] == name, "fvu"])
        cells = [f"{m[c]:{f}}" if pd.notna(m[c]) else "—" for c, f in COLUMNS.items()]
        out.append(f"| {name} | {n} | {m['fvu']:.4f} ({fvus}) | " + " | ".join(cells) + " |")
    out += ["", "Variants:", ""]
    out += [f"- `{k}`: {d}" for k, (_, d) in VARIANTS.items() if k in set(df["variant"])]
    out += [f"- `{k}`: {d}" for k, (_, d) in PEERS.items() if k in set(df["variant"])]
    out += [
        "",
        "Training FVU and dead fraction: each trainer's own, logged every 32 steps (—: not logged). Died / revived:",
        "latents whose dead state changed between log rows, summed over the run (diffdict's log only).",
        "",
    ]
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", choices=[*VARIANTS, *PEERS], default=["init1", "init577", "sparsify"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--tokens", type=int, default=2**21, help="training tokens (bench_sae_long's 2,097,152)")
    ap.add_argument("--out", required=True, help="path stem: writes <out>.md and <out>.csv")
    o = ap.parse_args(argv)
    a = data_args(o.tokens)
    train, test, _ = make_data(a)
    p = planted_world(a)
    atoms = p.atoms * p.massive  # the atoms as they appear in the data (massive dimensions scaled)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    rows = []
    for seed in o.seeds:
        for name in o.variants:
            rows.append(measure(name, seed, train, test, atoms, a))
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    df = pd.DataFrame(rows)
    cmd = shlex.join([".venv/bin/python", "benchmarks/sae_gap.py", *(sys.argv[1:] if argv is None else argv)])
    out, text = ROOT / o.out, markdown(df, a, cmd)  # an absolute --out stays as given
    write_table(f"{out}.csv", df, float_format="%.5g")
    write_text(f"{out}.md", text)
    print(text)


if __name__ == "__main__":
    main()
