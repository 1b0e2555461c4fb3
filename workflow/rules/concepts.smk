# Shapes world only: annotate generated images and score how well each dictionary recovers
# the planted concepts (best single feature per concept: image AUROC, token IoU).


rule annotate:
    """The annotator's concepts and token-level concept masks for every image of a split."""
    input:
        shards=lambda wc: expand(f"{R}/generations/{wc.split}/{{shard}}.safetensors", shard=shards(wc.split)),
        model=config["model"]["path"],
    output:
        f"{R}/annotations/{{split}}.npz",
    log:
        f"{LOGS}/annotate/{{split}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict annotate --annotator {input.model:q} --out {output:q} {input.shards:q} > {log:q} 2>&1"


rule concept_recovery:
    input:
        codes=f"{R}/features/{{site}}/{{dict}}/codes.safetensors",
        annotations=f"{R}/annotations/interp.npz",
    output:
        f"{R}/metrics/{{site}}/{{dict}}/concepts.csv",
    log:
        f"{LOGS}/concept_recovery/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict concept-recovery --codes {input.codes:q} --annotations {input.annotations:q} --out {output:q} "
        "> {log:q} 2>&1"


rule collect_concepts:
    input:
        expand_pairs("{R}/metrics/{site}/{dict}/concepts.csv"),
    output:
        f"{R}/tables/concepts.csv",
    params:
        kinds=KINDS,
    log:
        f"{LOGS}/collect_concepts.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict collect --stage metrics --kinds {params.kinds:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule figure_samples:
    """Generated test images beside their prompts, marked by whether colour and shape are right."""
    input:
        shard=f"{R}/generations/test/000.safetensors",
        prompts=f"{R}/prompts/test.parquet",
        model=config["model"]["path"],
    output:
        report(f"{RESULTS}/plots/{config['model']['name']}/samples.png", caption="../report/samples.rst",
               category="Shapes world"),
    log:
        f"{LOGS}/figures/samples.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict samples --shard {input.shard:q} --prompts {input.prompts:q} --annotator {input.model:q} "
        "--out {output:q} > {log:q} 2>&1"
