# diffdict: dictionary learning for text-to-image diffusion transformers.
#
#   snakemake --cores all results/figures/                  # embedded default (CPU, minutes)
#   snakemake --profile profiles/slurm results/figures/ --configfile config/flux-schnell.yaml
#
# Each rule is thin: it calls one `diffdict` CLI subcommand. Parameters are looked up per site
# and per dictionary, so editing one site's entry reruns that site's jobs and the aggregations.

from snakemake.utils import min_version

min_version("9.0")


# A --configfile given on the command line is a complete config and replaces the default
# (rather than being merged into it), so a Flux run or a test carries no toy sites along;
# --config key=value still adjusts the default.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/dictionaries.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/interp.smk"
include: "workflow/rules/steering.smk"
include: "workflow/rules/report.smk"
if config["model"]["kind"] == "toy":

    include: "workflow/rules/concepts.smk"

include: "workflow/rules/figures.smk"


rule all:
    input:
        FIGURES_DIR,
