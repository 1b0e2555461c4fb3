# Shapes world only: annotate generated images and score how well each dictionary recovers the
# planted concepts: the best single feature per concept, chosen on one seeded half of the interp
# images and scored on the other (token AUROC, token F1, image AUROC), beside a linear probe.


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
    params:
        seed=INTERP["seed"],
    log:
        f"{LOGS}/concept_recovery/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict concept-recovery --codes {input.codes:q} --annotations {input.annotations:q} "
        "--seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule concept_probe:
    """The ceiling: a logistic-regression probe per concept on the site's activations, trained on
    the same selection half and scored on the same report half as every dictionary."""
    input:
        store=f"{R}/activations/{{site}}/interp.zarr",
        annotations=f"{R}/annotations/interp.npz",
    output:
        f"{R}/metrics/{{site}}/concept_probe.csv",
    params:
        seed=INTERP["seed"],
    log:
        f"{LOGS}/concept_probe/{{site}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict concept-probe --store {input.store:q} --annotations {input.annotations:q} "
        "--seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule collect_concepts:
    """Every dictionary and replicate in one table, with the probe ceiling per concept, and the
    per-method summary (hierarchical CIs over runs and concepts, difference to random)."""
    input:
        tables=expand_pairs("{R}/metrics/{site}/{dict}/concepts.csv", replicates=True),
        probes=sorted({f"{R}/metrics/{s}/concept_probe.csv" for s, _ in site_dict_pairs()}),
    output:
        table=f"{R}/tables/concepts.csv",
        summary=f"{R}/tables/concepts_summary.csv",
    params:
        kinds=KINDS,
        replicas=REPLICAS,
        seed=INTERP["seed"],
    log:
        f"{LOGS}/collect_concepts.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "(diffdict collect --stage metrics --kinds {params.kinds:q} --replicas {params.replicas:q} "
        "--out {output.table:q} {input.tables:q} "
        "&& diffdict concept-summary --table {output.table:q} --probes {input.probes:q} --seed {params.seed} "
        "--out {output.summary:q}) > {log:q} 2>&1"


rule collect_ground_truth:
    """Does the run validate the pipeline? Issue 14's checks (the SAE's core token AUROC, its margin
    over random directions, interpretability separated from random), each beside its null."""
    input:
        concepts=f"{R}/tables/concepts.csv",
        concepts_summary=f"{R}/tables/concepts_summary.csv",
        interp_summary=f"{R}/tables/interp_summary.csv",
    output:
        table=report(GROUND_TRUTH["table"], caption="../report/ground_truth.rst", category="Shapes world"),
        markdown=GROUND_TRUTH["markdown"],
    params:
        title=f"Ground-truth checks: {config['model']['name']}",
    log:
        f"{LOGS}/collect_ground_truth.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict ground-truth --concepts {input.concepts:q} --concepts-summary {input.concepts_summary:q} "
        "--interp-summary {input.interp_summary:q} --title {params.title:q} --out {output.table:q} "
        "--markdown {output.markdown:q} > {log:q} 2>&1"


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
