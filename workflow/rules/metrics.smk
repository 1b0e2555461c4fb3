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
        kinds=dcfg.as_json({d: v["kind"] for d, v in config["dictionaries"].items()}),
    log:
        f"{LOGS}/collect_reconstruction.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict collect-reconstruction --kinds {params.kinds:q} --out {output:q} {input:q} > {log:q} 2>&1"
