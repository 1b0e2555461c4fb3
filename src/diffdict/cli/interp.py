"""Commands of the interpretation and steering stages: features, explanations, steering, browsers."""

from __future__ import annotations

from pathlib import Path

from .args import annotator, json_arg, model_and_site


def cmd_interp_summary(a):
    import pandas as pd

    from ..atomic import write_table
    from ..interp.scoring import compare_to_baseline

    table = pd.read_csv(a.table)
    runs = pd.read_csv(a.runs) if a.runs else None
    write_table(a.out, compare_to_baseline(table, a.scores, a.baseline, seed=a.seed, run_summaries=runs))


def cmd_features(a):
    from ..interp.run import feature_stats, make_cards

    feature_stats(a.dictionary, a.store, a.out_dir, a.interp)
    make_cards(a.out_dir, a.shards, a.interp, title=a.title)


def cmd_explain(a):
    from ..interp.run import explain_and_score, with_explainer

    cfg = with_explainer(a.interp, a.explainer, cache_dir=a.cache)
    explain_and_score(a.features_dir, a.shards, a.out_dir, cfg, annotator=annotator(a.annotator))


def cmd_steer(a):
    import pandas as pd

    from ..dictionaries import load_dictionary
    from ..model import load_pipeline
    from ..sites import Site
    from ..steering.scale import steering_site
    from ..steering.stage import steer_stage

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

    from ..steering.stage import grade_steering

    grade_steering(
        Path(a.table).parent,
        pd.read_parquet(a.explanations),
        a.out,
        annotator=annotator(a.annotator),
        explainer=a.explainer,
        cache_dir=a.cache,
    )


def cmd_steering_summary(a):
    import pandas as pd

    from ..atomic import write_table
    from ..steering.metrics import steering_summary

    write_table(a.out, steering_summary(pd.read_csv(a.table)))


def cmd_browser(a):
    import pandas as pd

    from ..dictionaries import load_dictionary
    from ..plots.browser import feature_table, provenance_table, write_browser

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
    from ..plots.report_index import browsers_from_dirs, figures_from_paths, write_index

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


def register(add) -> None:
    """Add this module's subcommands (`add(name, fn, help)` returns the subparser)."""
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
    s.add_argument("--interp", type=json_arg, default={})
    s.add_argument("--title", default="")
    s.add_argument("--out-dir", required=True)
    s.add_argument("shards", nargs="+")

    s = add("explain", cmd_explain, "explain sampled features and score the explanations")
    s.add_argument("--features-dir", required=True, help="the features stage's --out-dir (tasks, codes, stats)")
    s.add_argument("--interp", type=json_arg, default={})
    s.add_argument("--explainer", type=json_arg, required=True, help="one explainer's settings (its judge: inside)")
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
    s.add_argument("--steering", type=json_arg, default={})
    s.add_argument("--shard", required=True, help="a generation shard (strength unit of mlp sites)")
    s.add_argument("--out-dir", required=True)

    s = add("steering-metrics", cmd_steering_metrics, "grade a steering run")
    s.add_argument("--table", required=True, help="the steering run's table.parquet (images beside it)")
    s.add_argument("--explanations", required=True)
    s.add_argument("--annotator", default="", help="shapes world: grade with its annotator")
    s.add_argument(
        "--explainer",
        type=json_arg,
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
