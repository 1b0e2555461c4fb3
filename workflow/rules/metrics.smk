# Metrics on held-out activations.


rule reconstruction:
    """FVU (centred on the held-out split's per-dimension mean), L0, dead and alive fractions."""
    input:
        dictionary=f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
        test=f"{R}/activations/{{site}}/test.zarr",
    output:
        f"{R}/metrics/{{site}}/{{dict}}/reconstruction.json",
    log:
        f"{LOGS}/reconstruction/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict reconstruction --dictionary {input.dictionary:q} --test {input.test:q} "
        "--site-name {wildcards.site} --dict-name {wildcards.dict} --out {output:q} > {log:q} 2>&1"


rule collect_reconstruction:
    """One tidy table of every site x dictionary's reconstruction metrics."""
    input:
        expand_pairs("{R}/metrics/{site}/{dict}/reconstruction.json"),
    output:
        f"{R}/tables/reconstruction.csv",
    params:
        kinds=KINDS,
    log:
        f"{LOGS}/collect_reconstruction.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict collect --stage metrics --kinds {params.kinds:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule spliced_generation:
    """Fraction of the denoiser's and the image's behaviour kept when the site is spliced."""
    input:
        dictionary=f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
        test=f"{R}/activations/{{site}}/test.zarr",
        shard=f"{R}/generations/test/000.safetensors",
        model=TOY_MODEL,
    output:
        f"{R}/metrics/{{site}}/{{dict}}/splice.json",
    params:
        model=model_json(),
        site=site_json,
        n_prompts=config["metrics"]["splice_prompts"],
        annotator=ANNOTATOR_ARG,
    log:
        f"{LOGS}/spliced_generation/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    resources:
        **MODEL_RESOURCES,
    shell:
        "diffdict splice --model {params.model:q} --exec {resources.model_exec:q} --site-name {wildcards.site} --site {params.site:q} "
        "--dictionary {input.dictionary:q} --dict-name {wildcards.dict} --shard {input.shard:q} "
        "--test {input.test:q} --n-prompts {params.n_prompts} {params.annotator} --out {output:q} > {log:q} 2>&1"
