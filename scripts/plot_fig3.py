"""Rule fig3: the scores of the step-imbalance runs -> figures/fig3.pdf."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import figures, logs

log = logs.to_file(snakemake.log[0])
settings = snakemake.params.settings
table = figures.load_scores(snakemake.input.scores)
figures.plot_fig3(table, snakemake.output.pdf, metric=settings.get("metric", "roc_auc"),
                  methods=settings.get("methods"), iteration=settings.get("iteration"))
log.info("drew %s from %d runs", snakemake.output.pdf, len(snakemake.input.scores))
