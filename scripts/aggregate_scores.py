"""Rule aggregate_scores: every run's scores -> one tidy table, with the checkpoint each run reports
(early stopping) and the runs of lr searches selected."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import early_stopping, figures, logs, selection

log = logs.to_file(snakemake.log[0])
table = early_stopping.mark_stops(figures.load_scores(snakemake.input.scores), snakemake.params.early_stopping)
table = selection.mark_selected(table)
figures.write_table(table, snakemake.output.table)
runs = table.drop_duplicates(["dataset", "profile", "seed", "variant"])
log.info("%d rows from %d runs in %d bundles", len(table), len(runs), len(snakemake.input.scores))
if "tau" in table:  # (absent from the score files of versions before the tau grid)
    log.info("scored at tau %s (0: plain outputs, 1: thresholded, others: post-hoc logit adjustment)",
             ", ".join(f"{tau:g}" for tau in sorted(table["tau"].dropna().unique())))
for run in runs[runs["diverged_at"].notna()].itertuples():
    log.warning("%s/%s/seed%d/%s diverged at iteration %d: left out of figures and selection", run.dataset,
                run.profile, run.seed, run.variant, run.diverged_at)
if snakemake.params.early_stopping["enabled"]:
    log.info("early stopping on the validation %s: %d of %d runs stopped before their last checkpoint",
             snakemake.params.early_stopping["metric"], runs["stopped_at"].notna().sum(), len(runs))
