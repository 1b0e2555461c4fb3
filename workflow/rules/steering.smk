# Steering by activation addition along feature directions, and whether it worked.

STEER_X = f"{R}/interp/{{site}}/{{dict}}/{STEER_EXPLAINER}"


rule steer:
    """Grids of features x strengths x prompts for the best-explained features."""
    input:
        dictionary=f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
        explanations=f"{STEER_X}/explanations.parquet",
        scores=f"{STEER_X}/scores.parquet",
        prompts=f"{R}/prompts/{STEER_SPLIT}.parquet",
        store=f"{R}/activations/{{site}}/train.zarr",
        shard=f"{R}/generations/{STEER_SPLIT}/000.safetensors",
        model=TOY_MODEL,
    output:
        grid=f"{R}/steering/{{site}}/{{dict}}/grid.png",
        images=f"{R}/steering/{{site}}/{{dict}}/images.safetensors",
        table=f"{R}/steering/{{site}}/{{dict}}/table.parquet",
        rows=directory(f"{R}/steering/{{site}}/{{dict}}/rows"),
    params:
        model=model_json(),
        site=site_json,
        steering=steering_json,
        out_dir=f"{R}/steering/{{site}}/{{dict}}",
    log:
        f"{LOGS}/steer/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    resources:
        **MODEL_RESOURCES,
    shell:
        "diffdict steer --model {params.model:q} --exec {resources.model_exec:q} --site-name {wildcards.site} --site {params.site:q} "
        "--dictionary {input.dictionary:q} --explanations {input.explanations:q} --scores {input.scores:q} "
        "--prompts {input.prompts:q} --store {input.store:q} --shard {input.shard:q} --steering {params.steering:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


rule steering_metrics:
    """Concept shift toward the explanation and change elsewhere, per strength."""
    input:
        images=f"{R}/steering/{{site}}/{{dict}}/images.safetensors",
        table=f"{R}/steering/{{site}}/{{dict}}/table.parquet",
        explanations=f"{STEER_X}/explanations.parquet",
        model=TOY_MODEL,
    output:
        f"{R}/steering/{{site}}/{{dict}}/metrics.parquet",
    params:
        annotator=ANNOTATOR_ARG,
        explainer=dcfg.as_json(config["interp"]["explainers"][STEER_EXPLAINER]),
        cache=f"{R}/cache/interp",
    log:
        f"{LOGS}/steering_metrics/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict steering-metrics --table {input.table:q} --explanations {input.explanations:q} "
        "{params.annotator} --explainer {params.explainer:q} --cache {params.cache:q} --out {output:q} "
        "> {log:q} 2>&1"


rule collect_steering:
    """Every steered cell in one table; the summary counts the features that move toward their
    concept beside the same count under permuted explanations (and random directions' rows)."""
    input:
        expand_pairs("{R}/steering/{site}/{dict}/metrics.parquet"),
    output:
        table=f"{R}/tables/steering.csv",
        summary=f"{R}/tables/steering_summary.csv",
    params:
        kinds=KINDS,
    log:
        f"{LOGS}/collect_steering.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "(diffdict collect --stage steering --kinds {params.kinds:q} --out {output.table:q} {input:q} "
        "&& diffdict steering-summary --table {output.table:q} --out {output.summary:q}) > {log:q} 2>&1"
