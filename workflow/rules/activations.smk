# Activations: replay each generation shard up to the site's block, then merge per split.


rule capture:
    """One site x shard: replay the stored trajectory up to the site's block only."""
    input:
        shard=f"{R}/generations/{{split}}/{{shard}}.safetensors",
        model=config["model"]["path"] if config["model"]["kind"] == "toy" else [],
    output:
        directory(f"{R}/activations/{{site}}/{{split}}/{{shard}}.zarr"),
    params:
        model=model_json(),
        site=site_json,
    log:
        f"{LOGS}/capture/{{site}}/{{split}}/{{shard}}.log",
    conda:
        "../../envs/diffdict.yaml"
    resources:
        **MODEL_RESOURCES,
    shell:
        "diffdict capture --model {params.model:q} --exec {resources.model_exec:q} --site-name {wildcards.site} --site {params.site:q} "
        "--split {wildcards.split} --shard-file {input.shard:q} --out {output:q} > {log:q} 2>&1"


rule merge_activations:
    """Concatenate a site's shard stores into one store per split (streamed, chunk by chunk)."""
    input:
        lambda wc: expand(f"{R}/activations/{wc.site}/{wc.split}/{{shard}}.zarr", shard=shards(wc.split)),
    output:
        directory(f"{R}/activations/{{site}}/{{split}}.zarr"),
    log:
        f"{LOGS}/merge/{{site}}/{{split}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict merge --out {output:q} {input:q} > {log:q} 2>&1"
