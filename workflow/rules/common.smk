# Shared helpers: config validation, paths, per-site / per-dictionary parameter lookups.

import json
import shlex
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from diffdict import config as dcfg
from diffdict import cpu_math
from diffdict.model.settings import EXEC_KEYS  # how model jobs run: resources, not params
from diffdict.interp.run import resolve_config as interp_options
from diffdict.steering.stage import resolve_config as steering_options
from diffdict.dictionaries.kinds import sae_kinds
from diffdict.interop.formats import PEER_FORMATS, peer_formats

SAE_KINDS = sae_kinds()  # kinds whose trained dictionary is a TopK SAE (exported, steered first)

# Friendly checks first (they name the valid choices and check indices against the model),
# then snakemake's own validation, which also fills in the schema's defaults.
try:
    config.update(dcfg.check(config, schema_path=workflow.source_path("../schemas/config.schema.yaml")))
except dcfg.ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, "../schemas/config.schema.yaml")
for warning in dcfg.budget_warnings(config):  # valid, but compared with random directions at another budget
    logger.warning(f"diffdict: {warning}")

# model.cpu_math: portable holds every job's math libraries to their AVX2 paths (the jobs inherit
# this process's environment; a SLURM job's snakemake parses this file again and does the same)
try:
    cpu_math.apply(config["model"]["cpu_math"])
except RuntimeError as e:
    raise WorkflowError(str(e)) from None

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


# The toy model folder is an input of the jobs that load it (the train_toy_model rule makes it);
# a real model's folder is outside the workflow.
TOY_MODEL = [config["model"]["path"]] if config["model"]["kind"] == "toy" else []
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
    d = dcfg.effective_dictionary(config, wildcards.dict)
    if d["kind"] != "pretrained":
        return []
    from diffdict.interop import pretrained_files as files

    return [str(f) for f in files(d["path"], d["format"])]


INTERP = interp_options({k: v for k, v in config["interp"].items() if k != "explainers"})  # every value
# what the interp and steering jobs depend on (dcfg.interp_params says what is left out)
INTERP_JSON = dcfg.as_json(dcfg.interp_params(config))
STEERING_JSON = dcfg.as_json(dcfg.steering_params(config))


def interp_json(wildcards=None):
    return INTERP_JSON


def steering_json(wildcards=None):
    return STEERING_JSON


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


# ---- what the figures and the report collect ----------------------------------------------

PLOTS = f"{RESULTS}/plots/{config['model']['name']}"

# figure name -> (tidy table it draws, report category)
FIGURE_TABLES = {
    "reconstruction": (f"{R}/tables/reconstruction.csv", "Reconstruction"),
    "splice_recovery": (f"{R}/tables/splice.csv", "Reconstruction"),
    "interp_scores": (f"{R}/tables/interp_scores.csv", "Interpretability"),
    "steering_success": (f"{R}/tables/steering.csv", "Steering"),
}
if config["model"]["kind"] == "toy":
    FIGURE_TABLES["concept_recovery"] = (f"{R}/tables/concepts.csv", "Shapes world")
FIGURES = [f"{PLOTS}/{name}.png" for name in FIGURE_TABLES] + [f"{PLOTS}/steering_grid.png"]
if config["model"]["kind"] == "toy":
    FIGURES.append(f"{PLOTS}/samples.png")
# shapes world: the ground-truth checks (table for the entry page, markdown beside the figures)
GROUND_TRUTH = {"table": f"{R}/tables/ground_truth.csv", "markdown": f"{R}/tables/ground_truth.md"}
GROUND_TRUTH_MD = [GROUND_TRUTH["markdown"]] if config["model"]["kind"] == "toy" else []
GROUND_TRUTH_TABLE = [GROUND_TRUTH["table"]] if config["model"]["kind"] == "toy" else []
BROWSER_DIR = f"{RESULTS}/report/{config['model']['name']}"
BROWSERS = expand_pairs("{browsers}/{site}/{dict}", browsers=BROWSER_DIR)
REPORT_INDEX = f"{RESULTS}/report/index.html"
# the dictionary whose steering grid is shown as a figure: the first SAE's first site
_sae = [d for d, v in config["dictionaries"].items() if v["kind"] in SAE_KINDS] or list(config["dictionaries"])
STEER_SAMPLE = (dcfg.dictionary_sites(config, _sae[0])[0], _sae[0])
