# Dictionaries: TopK SAE, ITDA, MLP neurons and random directions, one job per site x dictionary.


rule train_dictionary:
    """Train (SAE), build (ITDA) or extract (neurons, random) one dictionary on one site.

    Resumable: checkpoints live outside the output, so a killed job's rerun continues."""
    input:
        train=f"{R}/activations/{{site}}/train.zarr",
        model=TOY_MODEL,
        pretrained=pretrained_files,
    output:
        weights=f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
        log_csv=f"{R}/dictionaries/{{site}}/{{dict}}/train_log.csv",
    params:
        model=model_json(),
        site=site_json,
        dictionary=dict_json,
        checkpoints=f"{R}/checkpoints/{{site}}/{{dict}}",
    log:
        f"{LOGS}/train_dictionary/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    resources:
        **MODEL_RESOURCES,
    shell:
        "diffdict train-dictionary --model {params.model:q} --exec {resources.model_exec:q} --site-name {wildcards.site} --site {params.site:q} "
        "--dictionary {params.dictionary:q} --train {input.train:q} --checkpoints {params.checkpoints:q} "
        "--out {output.weights:q} --log-csv {output.log_csv:q} > {log:q} 2>&1"


EXPORTS = [f"{R}/exports/{fmt}/{s}/{d}" for s, d in site_dict_pairs()
           if config["dictionaries"][INSTANCES[d][0]]["kind"] in SAE_KINDS
           for fmt in peer_formats(config["dictionaries"][INSTANCES[d][0]])]


rule export_dictionary:
    """One trained TopK SAE as a SAELens or sparsify folder (cfg.json + safetensors)."""
    input:
        f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
    output:
        directory(f"{R}/exports/{{format}}/{{site}}/{{dict}}"),
    wildcard_constraints:
        format="|".join(PEER_FORMATS),
    params:
        model_name=config["model"]["name"],
    log:
        f"{LOGS}/export/{{format}}/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict export {input:q} --format {wildcards.format} --out {output:q} "
        "--model-name {params.model_name:q} > {log:q} 2>&1"


rule exports:
    """Every trained TopK SAE of the run in the peer formats that hold it (a BatchTopK SAE: SAELens
    only): `snakemake --cores all exports`."""
    input:
        EXPORTS,
