rule aggregate_scores:
    input:
        scores=bundle_scores(BUNDLES),
    output:
        table=report("results/scores.csv", caption="../report/scores.rst", category="Scores"),
        provenance=report(
            "results/scores.provenance.json", caption="../report/config.rst", category="Config"
        ),
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
        # One caption for every figure of this rule: it switches on the figure's name.
        pdf=report(
            "figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{figure}",
        ),
    wildcard_constraints:
        figure="fig[345678]|dynamics",
    params:
        figure=lambda wildcards: wildcards.figure,
        settings=lambda wildcards: figure_settings(wildcards.figure),
        runs=figure_run_keys,
        profile=figure_profile,
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
        pdf=report(
            "figures/{figure}.pdf",
            caption="../report/table4.rst",
            category="Figures",
            subcategory="{figure}",
        ),
        csv=report(
            "figures/{figure}.csv",
            caption="../report/table4.rst",
            category="Figures",
            subcategory="{figure}",
        ),
    wildcard_constraints:
        figure="table4",
    params:
        figure=lambda wildcards: wildcards.figure,
        settings=lambda wildcards: figure_settings(wildcards.figure),
        runs=figure_run_keys,
        profile=figure_profile,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_figure.py"
