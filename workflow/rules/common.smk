# Shared helpers: config validation, paths, per-site / per-dictionary parameter lookups.

import json
from pathlib import Path

from snakemake.utils import validate

from diffdict import config as dcfg
from diffdict.steering.stage import resolve_config as steering_options

# Friendly checks first (they name the valid choices and check indices against the model),
# then snakemake's own validation, which also fills in the schema's defaults.
try:
    config.update(dcfg.check(config, schema_path=workflow.source_path("../schemas/config.schema.yaml")))
except dcfg.ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
R = f"{RESULTS}/{config['model']['name']}"
FIGURES_DIR = f"{RESULTS}/figures"
SPLITS = list(config["prompts"]["splits"])
LOGS = f"{R}/logs"
# every dictionary trained: name -> (configured dictionary, replicate); see `replicates:`
INSTANCES = dcfg.dictionary_instances(config)


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d{3}",
    site="|".join(config["sites"]),
    dict="|".join(INSTANCES),
    explainer="|".join(config["interp"]["explainers"]),


EXPLAINERS = list(config["interp"]["explainers"])
# Whose explanations pick the features to steer (and judge steering on real models), and the
# prompts split steered: the stage's own defaults where the config is silent.
STEER_EXPLAINER = config["steering"].get("explainer") or EXPLAINERS[0]
STEER_SPLIT = steering_options(config["steering"])["split"]


# The shapes world's annotator lives in the toy model folder; real models have none.
ANNOTATOR_ARG = f"--annotator '{config['model']['path']}'" if config["model"]["kind"] == "toy" else ""
KINDS = dcfg.as_json({d: v["kind"] for d, v in config["dictionaries"].items()})
# replicate r > 0 of a dictionary -> [dictionary, r]: the interp tables pool them under its name
REPLICAS = dcfg.as_json({i: [d, r] for i, (d, r) in INSTANCES.items() if r})


def shards(split):
    return dcfg.shard_names(config, split)


def site_dict_pairs(replicates=False):
    """(site, dictionary) pairs the config asks for; with `replicates`, every replicate too."""
    return [(s, i) for i, (d, r) in INSTANCES.items() if replicates or r == 0
            for s in dcfg.dictionary_sites(config, d)]


def expand_pairs(pattern, replicates=False, **fields):
    """`pattern` formatted for every (site, dictionary) pair; {R} and `fields` fill the rest."""
    return [pattern.format(R=R, site=s, dict=d, **fields) for s, d in site_dict_pairs(replicates)]


# ---- params: canonical JSON of exactly the settings a job depends on ---------------------


# How a model job runs, not what it computes: kept out of params (a rerun trigger), so raising
# `runtime` for SLURM or moving to another GPU reruns nothing. They travel as resources.
EXEC_KEYS = ("gpu", "mem_mb", "runtime", "device", "cpu_offload")


def model_json(wildcards=None):
    return dcfg.as_json({k: v for k, v in config["model"].items() if k not in EXEC_KEYS})


def prompts_json(wildcards):
    return dcfg.as_json({**config["prompts"], "model_kind": config["model"]["kind"]})


def site_json(wildcards):
    return dcfg.as_json(config["sites"][wildcards.site])


def dict_json(wildcards):
    """The dictionary's settings with its kind's defaults filled in: a changed default retrains."""
    return dcfg.as_json(dcfg.effective_dictionary(config, wildcards.dict))


def pretrained_files(wildcards):
    """A `pretrained` dictionary's files: inputs of its job, so replacing them rebuilds it."""
    d = dcfg.instance_config(config, wildcards.dict)
    if d["kind"] != "pretrained":
        return []
    from diffdict.interop import pretrained_files as files

    return [str(f) for f in files(d["path"], d.get("format", "diffdict"))]


def interp_json(wildcards=None):
    """Protocol settings only: changing an explainer does not re-encode or redraw cards."""
    return dcfg.as_json({k: v for k, v in config["interp"].items() if k != "explainers"})


def explainer_json(wildcards):
    return dcfg.as_json(config["interp"]["explainers"][wildcards.explainer])


# ---- resources for jobs that run the model ------------------------------------------------

# `model.gpu: true` (the Flux configs) makes every model job ask for one GPU; the SLURM profile
# turns that into --gpus, and locally `--resources gpu=1` runs one GPU job at a time.
MODEL_RESOURCES = dict(
    gpu=1 if config["model"]["gpu"] else 0,
    mem_mb=config["model"]["mem_mb"],
    runtime=config["model"]["runtime"],
    # device / cpu_offload for the CLI's --exec (a string resource: not a rerun trigger)
    model_exec=dcfg.as_json({k: config["model"][k] for k in ("device", "cpu_offload") if k in config["model"]}),
)
