# The static HTML feature browser, one per site x dictionary (opens from disk, no server), and
# the entry page, results/report/index.html, that links them and the figures.

rule browser:
    """Each feature's card, explanation, scores, steering row and (ITDA) atom provenance."""
    input:
        explanations=f"{R}/interp/{{site}}/{{dict}}/{STEER_EXPLAINER}/explanations.parquet",
        scores=f"{R}/interp/{{site}}/{{dict}}/{STEER_EXPLAINER}/scores.parquet",
        cards=f"{R}/features/{{site}}/{{dict}}/cards",
        rows=f"{R}/steering/{{site}}/{{dict}}/rows",
        dictionary=f"{R}/dictionaries/{{site}}/{{dict}}/dictionary.safetensors",
        prompts=f"{R}/prompts/train.parquet",
    output:
        report(
            directory(f"{BROWSER_DIR}/{{site}}/{{dict}}"),
            htmlindex="index.html",
            caption="../report/feature_browser.rst",
            category="Feature browser",
        ),
    params:
        explainer=STEER_EXPLAINER,
    log:
        f"{LOGS}/browser/{{site}}/{{dict}}.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict browser --explanations {input.explanations:q} --scores {input.scores:q} --cards {input.cards:q} "
        "--steering-rows {input.rows:q} --dictionary {input.dictionary:q} --prompts {input.prompts:q} "
        "--site-name {wildcards.site} --dict-name {wildcards.dict} --explainer-name {params.explainer} "
        "--title '{wildcards.site} / {wildcards.dict}' --out-dir {output:q} > {log:q} 2>&1"


rule report_index:
    """The entry page: every feature browser (sites x dictionaries) and every figure, linked by
    relative paths so that it opens from disk."""
    input:
        browsers=BROWSERS,
        # FIGURES is defined in figures.smk, included after this file: looked up when the DAG is built
        figures=lambda wc: FIGURES,
        captions=lambda wc: [f"{workflow.basedir}/workflow/report/{Path(f).stem}.rst" for f in FIGURES],
        checks=GROUND_TRUTH_TABLE,
    output:
        REPORT_INDEX,
    params:
        model=config["model"]["name"],
        figures_dir=FIGURES_DIR,  # rule `figures` copies them there; the page links those copies
        checks=lambda wc, input: f"--checks {shlex.quote(input.checks[0])}" if input.checks else "",
    log:
        f"{RESULTS}/logs/report_index.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict report-index --model-name {params.model:q} --browsers {input.browsers:q} "
        "--figures {input.figures:q} --figures-dir {params.figures_dir:q} --captions {input.captions:q} "
        "{params.checks} --out {output:q} > {log:q} 2>&1"
