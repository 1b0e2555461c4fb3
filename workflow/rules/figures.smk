# Figures: one rule per figure (so only stale figures redraw), collected into results/figures/.

rule collect_splice:
    """Effect recovered by splicing, one row per site x dictionary x measure."""
    input:
        expand_pairs("{R}/metrics/{site}/{dict}/splice.json"),
    output:
        f"{R}/tables/splice.csv",
    params:
        kinds=KINDS,
    log:
        f"{LOGS}/collect_splice.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict collect --stage metrics --kinds {params.kinds:q} --melt effect_recovered_ --value-name recovered "
        "--out {output:q} {input:q} > {log:q} 2>&1"


# One rule per figure, so each has its own caption in the report and redraws alone.
for _name, (_table, _category) in FIGURE_TABLES.items():

    rule:
        name:
            f"figure_{_name}"
        input:
            _table,
        output:
            png=report(f"{PLOTS}/{_name}.png", caption=f"../report/{_name}.rst", category=_category),
            pdf=f"{PLOTS}/{_name}.pdf",
        params:
            figure=_name,  # shell strings are formatted at job time, after the loop has moved on
        log:
            f"{LOGS}/figures/{_name}.log",
        conda:
            "../../envs/diffdict.yaml"
        shell:
            "diffdict figure {params.figure} --table {input:q} --out {output.png:q} > {log:q} 2>&1"


rule figure_steering_grid:
    """A sample steering grid: the first SAE-like dictionary on the first site."""
    input:
        f"{R}/steering/{STEER_SAMPLE[0]}/{STEER_SAMPLE[1]}/grid.png",
    output:
        report(f"{PLOTS}/steering_grid.png", caption="../report/steering_grid.rst", category="Steering"),
    log:
        f"{LOGS}/figures/steering_grid.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict figure steering_grid --table {input:q} --out {output:q} > {log:q} 2>&1"


rule figures:
    """Collect every figure (PNG and PDF) into results/figures/, in the shapes world with the
    ground-truth checks (ground_truth.md); the feature browsers and the entry page
    (results/report/index.html) come along."""
    input:
        figures=FIGURES,
        checks=GROUND_TRUTH_MD,
        browsers=BROWSERS,
        index=REPORT_INDEX,
    output:
        directory(FIGURES_DIR),
    params:
        figures=FIGURES + GROUND_TRUTH_MD,
    log:
        f"{RESULTS}/logs/figures.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict collect-figures --out {output:q} {params.figures:q} > {log:q} 2>&1"
