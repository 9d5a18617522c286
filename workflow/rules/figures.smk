rule aggregate_scores:
    input:
        scores=[bundle.path(plan.BUNDLE_SCORES) for bundle in STUDY.bundles],
    output:
        table=report(plan.SCORES, caption="../report/scores.rst", category="Scores"),
    params:
        early_stopping=EARLY_STOPPING,
    log:
        "logs/aggregate_scores.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/aggregate_scores.py"


rule provenance:
    output:
        provenance=report(plan.PROVENANCE, caption="../report/config.rst", category="Config"),
    params:
        config=config,
    log:
        "logs/provenance.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/record_provenance.py"


rule figure:
    input:
        scores=figure_scores,
    output:
        # The caption is the figure's own (catalog.caption), passed in params.
        pdf=report(
            "figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{figure}",
        ),
        csv=report(
            "figures/{figure}.csv",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{figure}",
        ),
    params:
        figure=lambda wildcards: wildcards.figure,
        settings=lambda wildcards: figure_of(wildcards).settings,
        runs=lambda wildcards: figure_of(wildcards).run_keys,
        caption=lambda wildcards: figure_of(wildcards).caption,
        early_stopping=EARLY_STOPPING,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_figure.py"


# "Which method should I use?" (figures.comparison): the figure and its numbers as above, and the page
# of sentences generated from them, which its plot function writes beside the PDF (same name, .html);
# all three under their own report category. It takes precedence over the generic rule.
COMPARISON_CATEGORY = "Which method should I use?"


ruleorder: comparison > figure


rule comparison:
    input:
        scores=figure_scores,
    output:
        pdf=report("figures/{figure}.pdf", caption="../report/comparison.rst", category=COMPARISON_CATEGORY),
        csv=report("figures/{figure}.csv", caption="../report/comparison.rst", category=COMPARISON_CATEGORY),
        page=report("figures/{figure}.html", caption="../report/comparison.rst", category=COMPARISON_CATEGORY),
    wildcard_constraints:
        figure="comparison",
    params:
        figure=lambda wildcards: wildcards.figure,
        settings=lambda wildcards: figure_of(wildcards).settings,
        runs=lambda wildcards: figure_of(wildcards).run_keys,
        caption=lambda wildcards: figure_of(wildcards).caption,
        early_stopping=EARLY_STOPPING,
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_figure.py"
