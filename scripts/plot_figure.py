"""Any figure rule: the score table -> figures/<figure>.pdf (and figures/table4.csv for table4).

The rule names the figure (``params.figure``, a key of ``figures.FIGURES``) and its settings
(``params.settings``, a dict; a setting the figure does not take raises ``FigureSettingsError``);
``output.pdf`` is the drawing and every other named output is passed on as ``<name>_path``
(table4's ``output.csv`` becomes ``csv_path``). ``params.runs`` (dataset, profile, seed, run name)
limits the table to the figure's runs.
"""

import _src  # noqa: F401  (puts src/ on sys.path)

from imbalance_study import figures, logs, selection, study

log = logs.to_file(snakemake.log[0])
name = snakemake.params.figure
if name not in figures.FIGURES:
    raise figures.FigureSettingsError(f"unknown figure {name!r}; known: {sorted(figures.FIGURES)}")
settings = dict(getattr(snakemake.params, "settings", None) or {})
outputs = dict(snakemake.output.items())
pdf = outputs.pop("pdf", None) or snakemake.output[0]
extra = {f"{key}_path": value for key, value in outputs.items()}
# Per-run score files are written before any learning-rate search is decided.
figures.PDF_METADATA.update(figures.provenance_metadata(snakemake.config))
table = selection.mark_selected(figures.load_scores(snakemake.input.scores))
runs = getattr(snakemake.params, "runs", None)  # a bundle's score file may hold runs the figure leaves out
if runs is not None:
    table = figures.only_runs(table, [study.Run(*run) for run in runs])
figures.FIGURES[name](table, pdf, **settings, **extra)
log.info("drew %s (%s) from %d score rows with settings %s", name, ", ".join([pdf, *extra.values()]), len(table),
         settings)
