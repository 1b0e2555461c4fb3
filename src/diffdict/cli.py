"""Command line: one subcommand per workflow rule.

Rules pass their settings as canonical JSON (`--model '{...}'`), so each job sees exactly the
settings it depends on and Snakemake's params trigger reruns only what changed. Every
subcommand writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from .cpu_math import CPU_MATHS

log = logging.getLogger("diffdict")


def _json(s: str):
    """argparse type for JSON options; a bad value names where it breaks (argparse reports it)."""
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        shown = s if len(s) <= 80 else s[:77] + "..."
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg} at character {e.pos}): {shown!r}") from None


# ---- model and data -----------------------------------------------------------------------


def cmd_check_config(a):
    from .config import check, load_yaml

    cfg = load_yaml(a.config)
    check(cfg)
    print(f"{a.config}: valid")


def cmd_config(a):
    import yaml

    from .config import effective_config, load_yaml, write_schemas

    if a.write_schema:
        print("\n".join(map(str, write_schemas())))
    if a.show_defaults:
        print(yaml.safe_dump(effective_config(load_yaml(a.configfile)), sort_keys=False), end="")


def cmd_cpu_env(a):
    import shlex

    from .cpu_math import cpu_math_env

    for var, value in cpu_math_env(a.mode).items():
        print(f"export {var}={shlex.quote(value)}")


def cmd_train_toy(a):
    from .world.recipe import ToyRecipe
    from .world.train import train_toy

    train_toy(a.out, ToyRecipe.from_config(a.world))


def cmd_prompts(a):
    from .atomic import write_parquet
    from .prompts import prompt_table

    write_parquet(a.out, prompt_table(a.prompts, a.split))


def cmd_generate(a):
    import pandas as pd

    from .model import generate_shard, load_pipeline

    prompts = pd.read_parquet(a.prompts)
    prompts = prompts[prompts["shard"] == a.shard_index]
    if prompts.empty:
        raise SystemExit(f"shard {a.shard_index} of {a.prompts} is empty")
    pipe = load_pipeline(a.model)
    generate_shard(pipe, prompts, a.model, a.out)


def cmd_capture(a):
    from .model import capture, load_pipeline
    from .sites import Site

    site = Site.from_config(a.site_name, a.site)
    pipe = load_pipeline(a.model)
    keep = site.tokens_per_image if a.split == "train" else None
    capture(pipe, a.shard, site, a.out, tokens_per_image=keep, seed=_shard_seed(a.shard), split=a.split)


def _shard_seed(path: str) -> int:
    """Token subsampling seed: fixed per shard, so reruns keep the same tokens."""
    import zlib

    return zlib.crc32(Path(path).stem.encode())


def cmd_merge(a):
    from .store import merge_stores

    merge_stores(a.parts, a.out)


# ---- dictionaries and metrics -------------------------------------------------------------


def cmd_train_dictionary(a):
    from .dictionaries.factory import train_on_store
    from .sites import Site

    train_on_store(
        a.dictionary,
        a.train,
        Site.from_config(a.site_name, a.site),
        a.out,
        model_cfg=a.model,
        checkpoint_dir=a.checkpoints,
        log_path=a.log_csv,
    )


def cmd_export(a):
    from .interop import export_dictionary

    print(export_dictionary(a.dictionary, a.format, a.out, a.model_name))


def cmd_reconstruction(a):
    from .atomic import write_json
    from .dictionaries import load_dictionary
    from .metrics.reconstruction import reconstruction_metrics
    from .store import ActivationStore

    d = load_dictionary(a.dictionary)
    store = ActivationStore.open(a.test)
    m = reconstruction_metrics(d, store.batches(4096, shuffle=False))
    write_json(a.out, {"site": a.site_name, "dict": a.dict_name, "kind": d.kind, **m})


def cmd_splice(a):
    from .atomic import write_json
    from .dictionaries import load_dictionary
    from .metrics.splice import spliced_generation
    from .model import load_pipeline
    from .sites import Site
    from .store import ActivationStore

    mean = ActivationStore.open(a.test).mean()  # the mean-ablation baseline
    pipe = load_pipeline(a.model)
    m = spliced_generation(
        pipe,
        load_dictionary(a.dictionary),
        Site.from_config(a.site_name, a.site),
        a.shard,
        mean,
        a.model,
        n_prompts=a.n_prompts,
        annotate=_annotator(a.annotator).annotate if a.annotator else None,
    )
    write_json(a.out, {"site": a.site_name, "dict": a.dict_name, **m})


def cmd_collect(a):
    from .atomic import write_table
    from .plots.collect import collect_tables, melt_prefix

    table = collect_tables(a.inputs, a.stage, levels=tuple(a.levels or ()), kinds=a.kinds, replicas=a.replicas)
    write_table(a.out, melt_prefix(table, a.melt, a.value_name) if a.melt else table)


# ---- interpretation and steering ----------------------------------------------------------


def cmd_interp_summary(a):
    import pandas as pd

    from .atomic import write_table
    from .interp.scoring import compare_to_baseline

    table = pd.read_csv(a.table)
    runs = pd.read_csv(a.runs) if a.runs else None
    write_table(a.out, compare_to_baseline(table, a.scores, a.baseline, seed=a.seed, run_summaries=runs))


def _annotator(path: str):
    """The shapes world's annotator (stored inside the toy model folder), or None."""
    if not path:
        return None
    from .world.annotate import Annotator

    return Annotator.load(path)


def cmd_features(a):
    from .interp.run import feature_stats, make_cards

    feature_stats(a.dictionary, a.store, a.out_dir, a.interp)
    make_cards(a.out_dir, a.shards, a.interp, title=a.title)


def cmd_explain(a):
    from .interp.run import explain_and_score, with_explainer

    cfg = with_explainer(a.interp, a.explainer, cache_dir=a.cache)
    explain_and_score(a.features_dir, a.shards, a.out_dir, cfg, annotator=_annotator(a.annotator))


def cmd_steer(a):
    import pandas as pd

    from .dictionaries import load_dictionary
    from .model import load_pipeline
    from .sites import Site
    from .steering.scale import steering_site
    from .steering.stage import steer_stage

    pipe = load_pipeline(a.model)
    site, mean_norm = steering_site(pipe, Site.from_config(a.site_name, a.site), a.shard)
    steer_stage(
        pipe,
        site,
        load_dictionary(a.dictionary),
        pd.read_parquet(a.explanations),
        pd.read_parquet(a.scores),
        pd.read_parquet(a.prompts),
        a.store,
        a.model,
        a.out_dir,
        a.steering,
        mean_norm=mean_norm,
    )


def cmd_steering_metrics(a):
    import pandas as pd

    from .steering.stage import grade_steering

    grade_steering(
        Path(a.table).parent,
        pd.read_parquet(a.explanations),
        a.out,
        annotator=_annotator(a.annotator),
        explainer=a.explainer,
        cache_dir=a.cache,
    )


def cmd_steering_summary(a):
    import pandas as pd

    from .atomic import write_table
    from .steering.metrics import steering_summary

    write_table(a.out, steering_summary(pd.read_csv(a.table)))


def cmd_browser(a):
    import pandas as pd

    from .dictionaries import load_dictionary
    from .plots.browser import feature_table, provenance_table, write_browser

    prov = None
    if a.dictionary:
        d = load_dictionary(a.dictionary)
        if hasattr(d, "provenance"):
            prov = provenance_table(d, pd.read_parquet(a.prompts) if a.prompts else None)
    write_browser(
        a.out_dir,
        feature_table(pd.read_parquet(a.explanations), pd.read_parquet(a.scores)),
        a.cards,
        steering_dir=a.steering_rows,
        provenance=prov,
        title=f"diffdict · {a.title}",
        meta={"site": a.site_name, "dictionary": a.dict_name, "explainer": a.explainer_name},
    )


def cmd_report_index(a):
    from .plots.report_index import browsers_from_dirs, figures_from_paths, write_index

    captions = {Path(c).stem: Path(c).read_text(encoding="utf-8") for c in a.captions}
    checks = None
    if a.checks:
        import pandas as pd

        checks = pd.read_csv(a.checks)
    write_index(
        a.out,
        a.model_name,
        browsers_from_dirs(a.browsers),
        figures_from_paths(a.figures, collected_dir=a.figures_dir, captions=captions),
        checks=checks,
    )


# ---- shapes world: ground truth -----------------------------------------------------------


def cmd_annotate(a):
    from .metrics.annotations import annotate_shards, write_annotations

    write_annotations(annotate_shards(_annotator(a.annotator), a.shards), a.out)


def cmd_concept_recovery(a):
    from .atomic import write_table
    from .dictionaries import SparseCodes
    from .interp.codes import CodeTable
    from .metrics.annotations import read_annotations
    from .metrics.concepts import concept_recovery

    codes = CodeTable.load(a.codes)
    ann = read_annotations(a.annotations)
    table = concept_recovery(
        SparseCodes(codes.indices.long(), codes.values.float()),
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
    from .atomic import write_table
    from .metrics.annotations import read_annotations
    from .metrics.concepts import probe_recovery
    from .store import ActivationStore

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

    from .atomic import write_table
    from .metrics.concept_summary import summarize_concepts, with_probe_columns

    probes = {Path(p).parent.name: pd.read_csv(p) for p in a.probes}  # metrics/{site}/concept_probe.csv
    table = with_probe_columns(pd.read_csv(a.table), probes)
    write_table(a.table, table)
    write_table(a.out, summarize_concepts(table, seed=a.seed))


def cmd_ground_truth(a):
    import pandas as pd

    from .atomic import atomic_path, write_table
    from .metrics.ground_truth import ground_truth_checks, markdown

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

    from .world.evaluate import shard_samples_figure

    shard_samples_figure(_annotator(a.annotator), a.shard, pd.read_parquet(a.prompts), a.out, n=a.n)


# ---- figures ------------------------------------------------------------------------------


def cmd_figure(a):
    from .plots import draw

    try:
        draw(a.name, a.table, a.out)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def cmd_collect_figures(a):
    from .atomic import atomic_path

    with atomic_path(a.out, is_dir=True) as tmp:
        for p in map(Path, a.inputs):
            for f in [p, p.with_suffix(".pdf")]:
                if f.exists():
                    shutil.copy2(f, tmp / f.name)


# ---- parser -------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffdict")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffdict", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_arg(s):  # every model-running command
        s.add_argument("--model", type=_json, required=True, help="the config's model section (JSON)")
        s.add_argument(
            "--exec",
            type=_json,
            default={},
            help="execution settings merged into --model "
            "(device, cpu_offload): kept apart so that changing them reruns nothing",
        )

    def model_and_site(s):  # the settings every model-running, per-site command takes
        model_arg(s)
        s.add_argument("--site-name", required=True)
        s.add_argument("--site", type=_json, required=True, help="the site's settings (JSON)")

    def add(name, fn, help):
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(fn=fn)
        return s

    s = add("check-config", cmd_check_config, "validate a config file")
    s.add_argument("config")

    s = add("config", cmd_config, "the effective configuration, every default filled in; the generated schema")
    s.add_argument("--configfile", default="config/config.yaml")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--show-defaults", action="store_true", help="print the config with every default it leaves out")
    what.add_argument(
        "--write-schema",
        action="store_true",
        help="regenerate workflow/schemas/{dictionaries,model,prompts,sites,interp,steering,world}.schema.yaml "
        "from the settings classes",
    )

    s = add(
        "cpu-env",
        cmd_cpu_env,
        "print the environment that holds the CPU math libraries to a model.cpu_math mode, for scripts run "
        'outside the workflow: eval "$(diffdict cpu-env portable)"',
    )
    s.add_argument("mode", choices=CPU_MATHS, help="native prints nothing")

    s = add("train-toy", cmd_train_toy, "train the shapes-world pipeline")
    s.add_argument("--world", type=_json, required=True)
    model_arg(s)
    s.add_argument("--out", required=True)

    s = add("prompts", cmd_prompts, "write one split's prompt table")
    s.add_argument("--prompts", type=_json, required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)

    s = add("generate", cmd_generate, "generate one shard (images, trajectory, embeddings)")
    model_arg(s)
    s.add_argument("--prompts", required=True)
    s.add_argument("--shard-index", type=int, required=True, help="the prompts' shard to generate (0, 1, ...)")
    s.add_argument("--out", required=True)

    s = add("capture", cmd_capture, "capture a site's activations from one shard by replay")
    model_and_site(s)
    s.add_argument("--split", required=True)
    s.add_argument("--shard", required=True, help="a generation shard (.safetensors)")
    s.add_argument("--out", required=True)

    s = add("merge", cmd_merge, "merge shard activation stores")
    s.add_argument("--out", required=True)
    s.add_argument("parts", nargs="+")

    s = add("train-dictionary", cmd_train_dictionary, "train/build one dictionary on one site")
    model_and_site(s)
    s.add_argument("--dictionary", type=_json, required=True)
    s.add_argument("--train", required=True)
    s.add_argument("--checkpoints", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--log-csv", required=True)

    s = add("export", cmd_export, "write a trained TopK SAE as a SAELens or sparsify folder")
    s.add_argument("dictionary", help="a diffdict dictionary.safetensors")
    s.add_argument("--format", required=True, choices=["saelens", "sparsify"])
    s.add_argument("--out", required=True, help="folder to write (replaced atomically)")
    s.add_argument("--model-name", default=None, help="recorded in cfg.json (e.g. black-forest-labs/FLUX.1-schnell)")

    s = add("reconstruction", cmd_reconstruction, "held-out reconstruction metrics")
    s.add_argument("--dictionary", required=True)
    s.add_argument("--test", required=True)
    s.add_argument("--site-name", required=True)
    s.add_argument("--dict-name", required=True)
    s.add_argument("--out", required=True)

    s = add("splice", cmd_splice, "spliced-generation effect recovered")
    model_and_site(s)
    s.add_argument("--dictionary", required=True)
    s.add_argument("--dict-name", required=True)
    s.add_argument("--shard", required=True, help="a generation shard of the test split (.safetensors)")
    s.add_argument("--test", required=True, help="the site's test activation store (its mean: the ablation)")
    s.add_argument("--n-prompts", type=int, default=None)
    s.add_argument("--annotator", default="", help="shapes world: also compare what the images show")
    s.add_argument("--out", required=True)

    s = add("collect", cmd_collect, "concatenate per site x dictionary result tables")
    s.add_argument("--stage", required=True, help="folder under the model's results: interp, steering, metrics")
    s.add_argument("--levels", nargs="*", default=[], help="path levels below {site}/{dict}, e.g. explainer")
    s.add_argument("--kinds", type=_json, default={})
    s.add_argument(
        "--replicas",
        type=_json,
        default=None,
        help='{"sae-r1": ["sae", 1], ...}: file replicates under their dictionary (adds a replicate column)',
    )
    s.add_argument("--melt", default=None, help="melt columns with this prefix into metric/value rows")
    s.add_argument("--value-name", default="value")
    s.add_argument("--out", required=True)
    s.add_argument("inputs", nargs="+")

    s = add(
        "interp-summary",
        cmd_interp_summary,
        "per-method means with bootstrap CIs and the difference to the baseline (random directions)",
    )
    s.add_argument("--table", required=True, help="per-feature scores (collect --stage interp)")
    s.add_argument(
        "--scores",
        nargs="+",
        default=["balanced_accuracy", "token_f1"],
        choices=["balanced_accuracy", "auroc", "detection_score", "token_f1", "token_precision", "token_recall"],
        help="per-feature columns to summarise (those present in the table)",
    )
    s.add_argument("--baseline", default="random", help="dictionary kind to compare against")
    s.add_argument(
        "--runs", default=None, help="the runs' summary.json collected (collect --stage interp): latents left out"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)

    s = add("features", cmd_features, "sparse codes, feature statistics and cards of the interp split")
    s.add_argument("--dictionary", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--interp", type=_json, default={})
    s.add_argument("--title", default="")
    s.add_argument("--out-dir", required=True)
    s.add_argument("shards", nargs="+")

    s = add("explain", cmd_explain, "explain sampled features and score the explanations")
    s.add_argument("--features-dir", required=True, help="the features stage's --out-dir (tasks, codes, stats)")
    s.add_argument("--interp", type=_json, default={})
    s.add_argument("--explainer", type=_json, required=True, help="one explainer's settings (its judge: inside)")
    s.add_argument("--annotator", default="", help="shapes-world annotator (toy model folder)")
    s.add_argument("--cache", required=True)
    s.add_argument(
        "--out-dir", required=True, help="writes explanations, judgements, scores (.parquet) and summary.json"
    )
    s.add_argument("shards", nargs="+")

    s = add("steer", cmd_steer, "steering grids for the best-explained features")
    model_and_site(s)
    s.add_argument("--dictionary", required=True)
    s.add_argument("--explanations", required=True)
    s.add_argument("--scores", required=True)
    s.add_argument("--prompts", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--steering", type=_json, default={})
    s.add_argument("--shard", required=True, help="a generation shard (strength unit of mlp sites)")
    s.add_argument("--out-dir", required=True)

    s = add("steering-metrics", cmd_steering_metrics, "grade a steering run")
    s.add_argument("--table", required=True, help="the steering run's table.parquet (images beside it)")
    s.add_argument("--explanations", required=True)
    s.add_argument("--annotator", default="", help="shapes world: grade with its annotator")
    s.add_argument(
        "--explainer",
        type=_json,
        default={},
        help="real models: the steering explainer's settings; its judge (or itself) grades",
    )
    s.add_argument("--cache", default=None)
    s.add_argument("--out", required=True)

    s = add(
        "steering-summary",
        cmd_steering_summary,
        "N of M steered features that move toward their concept, beside the wrong-explanation null",
    )
    s.add_argument("--table", required=True, help="collected steering metrics (tables/steering.csv)")
    s.add_argument("--out", required=True)

    s = add("browser", cmd_browser, "static HTML feature browser of one dictionary")
    s.add_argument("--explanations", required=True)
    s.add_argument("--scores", required=True)
    s.add_argument("--cards", required=True)
    s.add_argument("--steering-rows", default=None)
    s.add_argument("--dictionary", default=None)
    s.add_argument("--prompts", default=None)
    s.add_argument("--site-name", default="")
    s.add_argument("--dict-name", default="")
    s.add_argument("--explainer-name", default="")
    s.add_argument("--title", default="")
    s.add_argument("--out-dir", required=True)

    s = add("report-index", cmd_report_index, "entry page linking every feature browser and figure")
    s.add_argument("--model-name", required=True)
    s.add_argument("--browsers", nargs="*", default=[], help="feature browser folders, .../{model}/{site}/{dict}")
    s.add_argument("--figures", nargs="*", default=[], help="figure PNGs (a PDF beside one is linked too)")
    s.add_argument(
        "--figures-dir", default=None, help="the folder collect-figures copies the figures into: links point there"
    )
    s.add_argument("--captions", nargs="*", default=[], help="{figure}.rst captions; each figure shows its lead")
    s.add_argument("--checks", default=None, help="shapes world: tables/ground_truth.csv, shown first")
    s.add_argument("--out", required=True)

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

    s = add("figure", cmd_figure, "draw one figure")
    s.add_argument("name")
    s.add_argument("--table")
    s.add_argument("--out", required=True)

    s = add("collect-figures", cmd_collect_figures, "copy figures (PNG+PDF) into one folder")
    s.add_argument("--out", required=True)
    s.add_argument("inputs", nargs="+")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "exec", None):
        args.model = {**args.model, **args.exec}
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .config import ConfigError

    try:
        args.fn(args)
    except ConfigError as e:
        print(f"diffdict: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:  # a path the user gave: one line naming it (--verbose: the traceback)
        if args.verbose:
            raise
        print(f"diffdict: {f'{e.strerror}: {e.filename}' if e.filename else e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
