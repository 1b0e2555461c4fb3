# Activations: replay each generation shard up to the site's block, then merge per split.

# A shard's store is read only by merge_activations, and together the shards take as much disk
# as the merged stores: temp(), deleted once merged, unless `activations.keep_shards` (set it
# before the run; it reruns nothing). Changed settings still rerun capture: Snakemake keeps the
# record (params, code) of a deleted temp output.
SHARD_STORE = f"{R}/activations/{{site}}/{{split}}/{{shard}}.zarr"


rule capture:
    """One site x shard: replay the stored trajectory up to the site's block only."""
    input:
        shard=f"{R}/generations/{{split}}/{{shard}}.safetensors",
        model=TOY_MODEL,
    output:
        directory(SHARD_STORE) if config["activations"]["keep_shards"] else temp(directory(SHARD_STORE)),
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
        "--split {wildcards.split} --shard {input.shard:q} --out {output:q} > {log:q} 2>&1"


rule merge_activations:
    """Concatenate a site's shard stores into one store per split (streamed, chunk by chunk)."""
    input:
        lambda wc: expand(SHARD_STORE, site=wc.site, split=wc.split, shard=shards(wc.split)),
    output:
        directory(f"{R}/activations/{{site}}/{{split}}.zarr"),
    log:
        f"{LOGS}/merge/{{site}}/{{split}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict merge --out {output:q} {input:q} > {log:q} 2>&1"
