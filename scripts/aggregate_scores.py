"""Rule aggregate_scores: every run's scores -> one tidy table, with the runs of lr searches selected."""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import figures, logs, selection, study
from imbalance_study.atomic import write_json

log = logs.to_file(snakemake.log[0])
table = selection.mark_selected(figures.load_scores(snakemake.input.scores))
figures.write_table(table, snakemake.output.table)
# What made the table: the whole config and the software, beside it.
write_json(snakemake.output.provenance, {**study.provenance(snakemake.config), "config": snakemake.config})
log.info("%d rows from %d runs", len(table), len(snakemake.input.scores))
