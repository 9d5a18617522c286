"""Rule figure: the score files of a figure's runs -> figures/<figure>.pdf and figures/<figure>.csv.

The rule names the figure (``params.figure``: its plot function is ``figures.FIGURES[name]``, as its
entry in ``figures.catalog`` places it), its settings resolved from the config (``params.settings``)
and its runs (``params.runs``: dataset, profile, seed, run name), which limit the bundles' score
files to the figure's own rows.
"""

import _src  # noqa: F401  (puts src/ on sys.path)

import json

from imbalance_study import early_stopping, figures, logs, selection
from imbalance_study.provenance import PLOTTING, software_versions

log = logs.to_file(snakemake.log[0])
params = snakemake.params
plot = figures.FIGURES[params.figure]
# What made the figure, in its PDF's metadata: its settings and the software.
figures.PDF_METADATA.update(figures.provenance_metadata({params.figure: params.settings},
                                                       software_versions(PLOTTING)))
# Per-run score files are written before early stopping and any learning-rate search are decided.
table = early_stopping.mark_stops(figures.load_scores(snakemake.input.scores), params.early_stopping)
table = selection.mark_selected(table)
table = figures.only_runs(table, params.runs)  # a bundle's score file may hold runs the figure leaves out
plot(table, snakemake.output.pdf, snakemake.output.csv, **params.settings)
log.info("drew %s (%s, %s) from %d score rows with settings %s", params.figure, snakemake.output.pdf,
         snakemake.output.csv, len(table), json.dumps(params.settings))
