rule aggregate_scores:
    input:
        scores=bundle_scores(BUNDLES),
    output:
        table="results/scores.csv",
        provenance="results/scores.provenance.json",
    log:
        "logs/aggregate_scores.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/aggregate_scores.py"


rule figure:
    input:
        scores=figure_scores,
    output:
        pdf="figures/{figure}.pdf",
    wildcard_constraints:
        figure="fig[345678]|dynamics",
    params:
        figure=lambda wildcards: wildcards.figure,
        settings=lambda wildcards: figure_settings(wildcards.figure),
        runs=figure_run_keys,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_figure.py"


rule table4:
    input:
        scores=figure_scores,
    output:
        pdf="figures/{figure}.pdf",
        csv="figures/{figure}.csv",
    wildcard_constraints:
        figure="table4",
    params:
        figure=lambda wildcards: wildcards.figure,
        settings=lambda wildcards: figure_settings(wildcards.figure),
        runs=figure_run_keys,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_figure.py"
