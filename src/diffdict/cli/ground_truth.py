"""Commands of the shapes world's ground truth: annotations, concept recovery, probes, the checks."""

from __future__ import annotations

from pathlib import Path

from .args import annotator


def cmd_annotate(a):
    from ..metrics.annotations import annotate_shards, write_annotations

    write_annotations(annotate_shards(annotator(a.annotator), a.shards), a.out)


def cmd_concept_recovery(a):
    from ..atomic import write_table
    from ..interp.codes import CodeTable
    from ..metrics.annotations import read_annotations
    from ..metrics.concepts import concept_recovery

    codes = CodeTable.load(a.codes)
    ann = read_annotations(a.annotations)
    table = concept_recovery(
        codes.sparse(),
        codes.prompt_id,
        codes.token,
        ann.masks,
        ann.concepts,
        codes.n_features,
        mask_prompt_ids=ann.prompt_id,
        seed=a.seed,
    )
    write_table(a.out, table)


def cmd_concept_probe(a):
    from ..atomic import write_table
    from ..metrics.annotations import read_annotations
    from ..metrics.concepts import probe_recovery
    from ..store import ActivationStore

    store = ActivationStore.open(a.store)
    meta = store.meta()
    ann = read_annotations(a.annotations)
    table = probe_recovery(
        store.read(slice(None)).numpy(),
        meta["prompt_id"],
        meta["token"],
        ann.masks,
        ann.concepts,
        mask_prompt_ids=ann.prompt_id,
        seed=a.seed,
    )
    write_table(a.out, table)


def cmd_concept_summary(a):
    import pandas as pd

    from ..atomic import write_table
    from ..metrics.concept_summary import summarize_concepts, with_probe_columns

    probes = {Path(p).parent.name: pd.read_csv(p) for p in a.probes}  # metrics/{site}/concept_probe.csv
    table = with_probe_columns(pd.read_csv(a.table), probes)
    write_table(a.table, table)
    write_table(a.out, summarize_concepts(table, seed=a.seed))


def cmd_ground_truth(a):
    import pandas as pd

    from ..atomic import atomic_path, write_table
    from ..metrics.ground_truth import ground_truth_checks, markdown

    interp = pd.read_csv(a.interp_summary) if a.interp_summary else None
    checks = ground_truth_checks(pd.read_csv(a.concepts), pd.read_csv(a.concepts_summary), interp)
    write_table(a.out, checks)
    text = markdown(checks, a.title)
    if a.markdown:
        with atomic_path(a.markdown) as tmp:
            tmp.write_text(text)
    print(text)


def cmd_samples(a):
    """Shapes world: generated test images beside their prompts, marked by adherence."""
    import pandas as pd

    from ..world.evaluate import shard_samples_figure

    shard_samples_figure(annotator(a.annotator), a.shard, pd.read_parquet(a.prompts), a.out, n=a.n)


def register(add) -> None:
    """Add this module's subcommands (`add(name, fn, help)` returns the subparser)."""
    s = add("annotate", cmd_annotate, "shapes world: token-level concept masks of generated images")
    s.add_argument("--annotator", required=True, help="toy model folder (holds annotator/)")
    s.add_argument("--out", required=True)
    s.add_argument("shards", nargs="+")

    s = add(
        "concept-recovery",
        cmd_concept_recovery,
        "shapes world: best feature per planted concept, chosen on one half of the images, scored on the other",
    )
    s.add_argument("--codes", required=True)
    s.add_argument("--annotations", required=True)
    s.add_argument("--seed", type=int, default=0, help="seed of the selection/report halves")
    s.add_argument("--out", required=True)

    s = add("concept-probe", cmd_concept_probe, "shapes world: the linear-probe ceiling of one site")
    s.add_argument("--store", required=True, help="the site's interp activation store")
    s.add_argument("--annotations", required=True)
    s.add_argument("--seed", type=int, default=0, help="seed of the selection/report halves")
    s.add_argument("--out", required=True)

    s = add(
        "concept-summary",
        cmd_concept_summary,
        "shapes world: add the probe ceiling to the concept table; per-method means with hierarchical CIs",
    )
    s.add_argument("--table", required=True, help="collected concept table (rewritten with probe columns)")
    s.add_argument("--probes", nargs="+", required=True, help="metrics/{site}/concept_probe.csv files")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)

    s = add(
        "ground-truth",
        cmd_ground_truth,
        "shapes world: the checks that the run tells a trained SAE from random directions, each beside its null",
    )
    s.add_argument("--concepts", required=True, help="tables/concepts.csv (with probe columns)")
    s.add_argument("--concepts-summary", required=True, help="tables/concepts_summary.csv")
    s.add_argument("--interp-summary", default=None, help="tables/interp_summary.csv")
    s.add_argument("--title", default="")
    s.add_argument("--out", required=True, help="one row per site, SAE and check (csv)")
    s.add_argument("--markdown", default=None, help="the same as a markdown table")

    s = add("samples", cmd_samples, "shapes world: sample generations beside their prompts")
    s.add_argument("--shard", required=True)
    s.add_argument("--prompts", required=True)
    s.add_argument("--annotator", required=True)
    s.add_argument("--n", type=int, default=18)
    s.add_argument("--out", required=True)
