# The model and what it generates: toy model (shapes world only), prompts, generation shards.


if config["model"]["kind"] == "toy":

    rule train_toy_model:
        """Train the shapes-world pipeline (skipped when the folder exists, e.g. committed)."""
        output:
            directory(config["model"]["path"]),
        params:
            world=dcfg.as_json(config["world"]),
            model=model_json(),
        log:
            f"{LOGS}/train_toy_model.log",
        threads: config["world"]["threads"]  # torch threads; the result depends on them
        conda:
            "../../envs/diffdict.yaml"
        resources:
            **MODEL_RESOURCES,
        shell:
            "diffdict train-toy --world {params.world:q} --model {params.model:q} --exec {resources.model_exec:q} --out {output:q} > {log:q} 2>&1"


rule prompts:
    """Prompt table of one split: ids, text, noise seeds, shard, and concept labels if known."""
    output:
        f"{R}/prompts/{{split}}.parquet",
    params:
        prompts=prompts_json,
    log:
        f"{LOGS}/prompts/{{split}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict prompts --prompts {params.prompts:q} --split {wildcards.split} --out {output:q} > {log:q} 2>&1"


rule generate:
    """Generate one shard: images, latent trajectory and text embeddings."""
    input:
        prompts=f"{R}/prompts/{{split}}.parquet",
        model=TOY_MODEL,
    output:
        f"{R}/generations/{{split}}/{{shard}}.safetensors",
    params:
        model=model_json(),
    log:
        f"{LOGS}/generate/{{split}}/{{shard}}.log",
    conda:
        "../../envs/diffdict.yaml"
    resources:
        **MODEL_RESOURCES,
    shell:
        "diffdict generate --model {params.model:q} --exec {resources.model_exec:q} --prompts {input.prompts:q} "
        "--shard-index {wildcards.shard} --out {output:q} > {log:q} 2>&1"
