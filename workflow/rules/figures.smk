rule aggregate_scores:
    input:
        scores=score_files(RUNS),
    output:
        table="results/scores.csv",
    log:
        "logs/aggregate_scores.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/aggregate_scores.py"


rule fig3:
    input:
        scores=fig3_scores,
    output:
        pdf="figures/fig3.pdf",
    params:
        settings=config["figures"].get("fig3", {}),
    log:
        "logs/fig3.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_fig3.py"
