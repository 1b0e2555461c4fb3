# Figures: one rule per figure (so only stale figures redraw), collected into results/figures/.

PLOTS = f"{RESULTS}/plots/{config['model']['name']}"

FIGURES = {
    "reconstruction": f"{PLOTS}/reconstruction.png",
}


rule figure_reconstruction:
    """FVU by site for each dictionary, and L0 against FVU."""
    input:
        f"{R}/tables/reconstruction.csv",
    output:
        report(
            f"{PLOTS}/reconstruction.png",
            caption="../report/reconstruction.rst",
            category="Reconstruction",
        ),
    log:
        f"{LOGS}/figures/reconstruction.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict figure reconstruction --table {input:q} --out {output:q} > {log:q} 2>&1"


rule figures:
    """Collect every figure (PNG and PDF) into results/figures/."""
    input:
        list(FIGURES.values()),
    output:
        directory(FIGURES_DIR),
    log:
        f"{RESULTS}/logs/figures.log",
    conda:
        "../../envs/diffdict.yaml"
    shell:
        "diffdict collect-figures --out {output:q} {input:q} > {log:q} 2>&1"
