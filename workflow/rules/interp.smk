# Visual automated interpretation: sparse codes and feature cards, then explanations and scores.


rule features:
    """Sparse codes of the interp split, feature statistics, sampled features and their cards."""
    input:
        dictionary=f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
        interp=f"{R}/activations/{{site}}/interp.zarr",
        shards=expand(f"{R}/generations/interp/{{shard}}.safetensors", shard=shards("interp")),
    output:
        codes=f"{R}/features/{{site}}/{{dict}}/codes.safetensors",
        stats=f"{R}/features/{{site}}/{{dict}}/stats.parquet",
        image_stats=f"{R}/features/{{site}}/{{dict}}/image_stats.parquet",
        tasks=f"{R}/features/{{site}}/{{dict}}/tasks.json",
        cards=directory(f"{R}/features/{{site}}/{{dict}}/cards"),
    params:
        interp=interp_json,
        out_dir=f"{R}/features/{{site}}/{{dict}}",
    log:
        f"{LOGS}/features/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict features --dictionary {input.dictionary:q} --store {input.interp:q} --interp {params.interp:q} "
        "--title '{wildcards.site} / {wildcards.dict}' --out-dir {params.out_dir:q} {input.shards:q} > {log:q} 2>&1"


rule explain:
    """Explain sampled features from their top images; judge held-out positives and negatives."""
    input:
        tasks=f"{R}/features/{{site}}/{{dict}}/tasks.json",
        codes=f"{R}/features/{{site}}/{{dict}}/codes.safetensors",
        stats=f"{R}/features/{{site}}/{{dict}}/stats.parquet",
        shards=expand(f"{R}/generations/interp/{{shard}}.safetensors", shard=shards("interp")),
        model=TOY_MODEL,
    output:
        explanations=f"{R}/interp/{{site}}/{{dict}}/{{explainer}}/explanations.parquet",
        judgements=f"{R}/interp/{{site}}/{{dict}}/{{explainer}}/judgements.parquet",
        scores=f"{R}/interp/{{site}}/{{dict}}/{{explainer}}/scores.parquet",
        summary=f"{R}/interp/{{site}}/{{dict}}/{{explainer}}/summary.json",
    params:
        interp=interp_json,
        explainer=explainer_json,
        annotator=ANNOTATOR_ARG,
        cache=f"{R}/cache/interp",  # outside every output, so reruns find their answers
        features_dir=lambda wildcards, input: Path(input.tasks).parent,
        out_dir=lambda wildcards, output: Path(output.summary).parent,
    log:
        f"{LOGS}/explain/{{site}}/{{dict}}/{{explainer}}.log",
    conda:
        "../../envs/diffdict.yaml"
    resources:
        api_calls=1,  # `--resources api_calls=N` bounds concurrent jobs talking to one endpoint
    shell:
        "diffdict explain --features-dir {params.features_dir:q} --interp {params.interp:q} "
        "--explainer {params.explainer:q} {params.annotator} --cache {params.cache:q} --out-dir {params.out_dir:q} "
        "{input.shards:q} "
        "> {log:q} 2>&1"


rule collect_interp:
    """Per-feature detection scores of every site x dictionary x explainer in one table, each run's
    summary (its latents, those left out by the protocol, cost) in another, and the per-method
    summary with each method's difference to the random-direction baseline. The replicates of a
    dictionary are pooled under its name (column `replicate`)."""
    input:
        scores=[p for e in EXPLAINERS
                for p in expand_pairs("{R}/interp/{site}/{dict}/{explainer}/scores.parquet", replicates=True, explainer=e)],
        runs=[p for e in EXPLAINERS
              for p in expand_pairs("{R}/interp/{site}/{dict}/{explainer}/summary.json", replicates=True, explainer=e)],
    output:
        scores=f"{R}/tables/interp_scores.csv",
        runs=f"{R}/tables/interp_runs.csv",
        summary=f"{R}/tables/interp_summary.csv",
    params:
        kinds=KINDS,
        replicas=REPLICAS,
        seed=INTERP["seed"],
    log:
        f"{LOGS}/collect_interp.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "(diffdict collect --stage interp --levels explainer --kinds {params.kinds:q} --replicas {params.replicas:q} "
        "--out {output.scores:q} {input.scores:q} "
        "&& diffdict collect --stage interp --levels explainer --kinds {params.kinds:q} --replicas {params.replicas:q} "
        "--out {output.runs:q} {input.runs:q} "
        "&& diffdict interp-summary --table {output.scores:q} --runs {output.runs:q} --seed {params.seed} "
        "--out {output.summary:q}) "
        "> {log:q} 2>&1"
