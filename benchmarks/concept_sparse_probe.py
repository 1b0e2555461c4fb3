"""Is a shapes-world concept carried by a few features of a dictionary, if not by one?

`tables/concepts.csv` scores each dictionary's single best feature per concept. This benchmark
asks SAEBench's k-sparse probing question of the workflow run's trained dictionaries (every
replicate): per concept, the k features whose means differ most between the concept's tokens
and the others on the selection half, a logistic regression on them, token AUROC on the report
half (`diffdict.metrics.sparse_probe`), over all tokens and within the concept's kind. Random
directions are the null; the same probe on the raw activations is the ceiling, and on the
activations turned by a random rotation tells whether the site's own basis is privileged. Means over
concepts with the hierarchical bootstrap (runs, then concepts) and the CI of each dictionary's
difference to random directions, as in `tables/concepts_summary.csv`.

    .venv/bin/python benchmarks/concept_sparse_probe.py --results results/shapes \
        --out benchmarks/results/concept_sparse_probe

Writes OUT.csv (one row per site x dictionary x replicate x concept x k) and OUT.md.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from diffdict.atomic import write_table, write_text  # noqa: E402
from diffdict.dictionaries import load_dictionary  # noqa: E402
from diffdict.metrics.concept_summary import summarize_concepts  # noqa: E402
from diffdict.metrics.sparse_probe import sparse_probe_recovery  # noqa: E402
from diffdict.store import ActivationStore  # noqa: E402
from diffdict.world.scene import concept_kind  # noqa: E402

METRICS = ("token_auroc", "kind_token_auroc")


def site_table(results: Path, site: str, ks: list[int]) -> pd.DataFrame:
    store = ActivationStore.open(results / "activations" / site / "interp.zarr")
    x, meta = store.read(slice(None)), store.meta()
    ann = np.load(results / "annotations" / "interp.npz")
    names = [str(c) for c in ann["concepts"]]

    def sparse_probe(features: np.ndarray, ks: list[int]) -> pd.DataFrame:
        """The k < F asked for, then all F features (column `k` says "all")."""
        f = features.shape[1]
        t = sparse_probe_recovery(
            features,
            meta["prompt_id"],
            meta["token"],
            ann["token_masks"],
            names,
            ks=[k for k in ks if k < f] + [f],
            mask_prompt_ids=ann["prompt_id"],
        )
        t = t.assign(n_features=f, k=t["k"].where(t["k"] < f, "all").astype(str))
        t.loc[t["k"] == "all", ["features", "kind_features"]] = "all"  # not F indices per row
        return t

    parts = []
    for path in sorted((results / "dictionaries" / site).glob("*/dictionary.safetensors")):
        name, rep = re.fullmatch(r"(.+?)(?:-r(\d+))?", path.parent.name).groups()
        d = load_dictionary(path)
        with torch.no_grad():
            dense = d.encode(x).to_dense(d.n_features).numpy()
        t = sparse_probe(dense, ks)
        parts.append(t.assign(site=site, dict=name, kind=d.kind, replicate=int(rep or 0)))
        print(site, path.parent.name, t.groupby("k")[list(METRICS)].mean().round(3).to_dict("index"), flush=True)
    t = sparse_probe(x.numpy(), ks)
    parts.append(t.assign(site=site, dict="activations", kind="activations", replicate=0))
    # The same coordinates turned by a seeded random rotation: is the site's own basis privileged?
    q = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], generator=torch.Generator().manual_seed(0)))[0]
    t = sparse_probe((x @ q).numpy(), ks)
    parts.append(t.assign(site=site, dict="rotated activations", kind="rotated activations", replicate=0))
    return pd.concat(parts, ignore_index=True)


def summary(table: pd.DataFrame, ks: list[str]) -> pd.DataFrame:
    """`summarize_concepts` per k, with a printable `value` column (mean and difference to random)."""
    rows = []
    for k in ks:
        at = table[table["k"] == k]
        if at.empty:
            continue
        s = summarize_concepts(at, metrics=METRICS, n_boot=1000)
        rows.append(s.assign(k=k))
    s = pd.concat(rows, ignore_index=True)
    s["value"] = s["mean"].map("{:.3f}".format)
    diff = s["diff_vs_random"].notna()
    s.loc[diff, "value"] += s[diff].apply(
        lambda r: f" ({r.diff_vs_random:+.3f} [{r.diff_lo:+.3f}, {r.diff_hi:+.3f}])", axis=1
    )
    return s


def pivot(s: pd.DataFrame, metric: str) -> str:
    p = s[s["metric"] == metric].pivot_table(
        index=["site", "dict"], columns="k", values="value", aggfunc="first", sort=False
    )
    return p.fillna("").to_markdown()


def markdown(table: pd.DataFrame, ks: list[str], cmd: str, kinds: tuple[str, ...] = ()) -> str:
    """Per site and dictionary, the mean over concepts per k (all tokens, within the kind), and
    each dictionary's difference to random directions with its CI; then the same within each of
    `kinds` on its concepts alone."""
    s = summary(table, ks)
    n = table["concept"].nunique()
    parts = [
        "# k-sparse probing of the workflow run's dictionaries",
        "",
        f"`{cmd}`",
        "",
        "Per concept: the k features whose means differ most between the concept's tokens and the "
        "others on the selection half of the interp images, a logistic regression on them, token "
        f"AUROC on the other half (`diffdict.metrics.sparse_probe`); mean over the {n} concepts and "
        "the dictionary's runs. In brackets: the difference to random directions (same width and "
        "sparsity) with the 95 % hierarchical bootstrap CI (runs, then concepts). `activations`: "
        "the same probe on the site's raw activations (one run; its largest k is the dense probe); "
        "`rotated activations`: on the same activations turned by a seeded random rotation. "
        "`all`: every feature of the dictionary (the dense probe on its codes).",
        "",
    ]
    for metric, title in (("kind_token_auroc", "Within the concept's kind"), ("token_auroc", "All tokens")):
        parts += [f"## {title}", "", pivot(s, metric), ""]
    for kind in kinds:
        of_kind = table[concept_kind(table["concept"]) == kind]
        if of_kind.empty:
            raise ValueError(f"--kinds: no '{kind}=' concepts; kinds: {sorted(set(concept_kind(table['concept'])))}")
        parts += [f"## Within the kind, {kind} concepts only", "", pivot(summary(of_kind, ks), "kind_token_auroc"), ""]
    return "\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/shapes"))
    ap.add_argument("--sites", nargs="+", default=["double1_img", "single1_img", "double1_mlp"])
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/concept_sparse_probe"))
    ap.add_argument("--kinds", nargs="*", default=[], help="also tabulate these concept kinds alone (e.g. texture)")
    ap.add_argument("--from-csv", action="store_true", help="re-tabulate OUT.csv instead of probing again")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.from_csv:
        table = pd.read_csv(f"{a.out}.csv", dtype={"k": str})
    else:
        table = pd.concat([site_table(a.results, s, a.ks) for s in a.sites], ignore_index=True)
        write_table(f"{a.out}.csv", table)
    ks = [str(k) for k in a.ks] + ["all"]
    cmd = "python " + shlex.join(x for x in sys.argv if x != "--from-csv")  # the run that made OUT.csv
    write_text(f"{a.out}.md", markdown(table, ks, cmd, tuple(a.kinds)))
    print(Path(f"{a.out}.md").read_text())


if __name__ == "__main__":
    main()
