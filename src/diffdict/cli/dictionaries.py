"""Commands of the dictionary and metric stages: training, export, reconstruction, splicing, tables."""

from __future__ import annotations

from .args import annotator, json_arg, model_and_site


def cmd_train_dictionary(a):
    from ..dictionaries.factory import train_on_store
    from ..sites import Site

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
    from ..interop import export_dictionary

    print(export_dictionary(a.dictionary, a.format, a.out, a.model_name))


def cmd_reconstruction(a):
    from ..atomic import write_json
    from ..dictionaries import load_dictionary
    from ..metrics.reconstruction import reconstruction_metrics
    from ..store import ActivationStore

    d = load_dictionary(a.dictionary)
    store = ActivationStore.open(a.test)
    m = reconstruction_metrics(d, store.batches(4096, shuffle=False))
    write_json(a.out, {"site": a.site_name, "dict": a.dict_name, "kind": d.kind, **m})


def cmd_splice(a):
    from ..atomic import write_json
    from ..dictionaries import load_dictionary
    from ..metrics.splice import spliced_generation
    from ..model import load_pipeline
    from ..sites import Site
    from ..store import ActivationStore

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
        annotate=annotator(a.annotator).annotate if a.annotator else None,
    )
    write_json(a.out, {"site": a.site_name, "dict": a.dict_name, **m})


def cmd_collect(a):
    from ..atomic import write_table
    from ..plots.collect import collect_tables, melt_prefix

    table = collect_tables(a.inputs, a.stage, levels=tuple(a.levels or ()), kinds=a.kinds, replicas=a.replicas)
    write_table(a.out, melt_prefix(table, a.melt, a.value_name) if a.melt else table)


def register(add) -> None:
    """Add this module's subcommands (`add(name, fn, help)` returns the subparser)."""
    s = add("train-dictionary", cmd_train_dictionary, "train/build one dictionary on one site")
    model_and_site(s)
    s.add_argument("--dictionary", type=json_arg, required=True)
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
    s.add_argument("--kinds", type=json_arg, default={})
    s.add_argument(
        "--replicas",
        type=json_arg,
        default=None,
        help='{"sae-r1": ["sae", 1], ...}: file replicates under their dictionary (adds a replicate column)',
    )
    s.add_argument("--melt", default=None, help="melt columns with this prefix into metric/value rows")
    s.add_argument("--value-name", default="value")
    s.add_argument("--out", required=True)
    s.add_argument("inputs", nargs="+")
