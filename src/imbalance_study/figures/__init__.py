"""The tidy score table and the paper's figures drawn from it.

Every figure is a function ``plot(table, pdf_path, csv_path, **settings)`` registered in ``FIGURES``
under its name (fig3 ... fig8, table4, dynamics), so that one script (scripts/plot_figure.py) draws
any of them with the settings of the config key ``figures.<name>``, resolved by the workflow: the
settings with a default in the config schema (``metric``, fig5's ``imbalance``, fig7's ``rho``) and
fig8's and dynamics' ``profile`` are required keyword-only parameters without a default here; the
others (``methods``, ``datasets``, ``iteration``, table4's ``metric``) mean every method or dataset,
each run's last checkpoint, or ROC AUC and accuracy when None. A setting a figure does not take, or
a required one not given, raises ``FigureSettingsError`` naming the figure.

Each figure draws only from the score table: the rows marked ``selected`` (call
``selection.mark_selected`` first on per-run files), the test split (fig8 and dynamics also the
training split), overall scores (group all, class -1; dynamics the group means of the majority and
minority classes), at the last checkpoint of each run unless ``iteration`` names one, with the spread
over repeats (mean ± 1 sd) and their number in its title, one row of panels per dataset, methods in
``METHOD_ORDER`` then the others alphabetically. A title names the split a learning-rate search
chose the plotted runs on (``select_on``). A table with nothing to draw raises ``ScoreTableError``
naming the figure and the selection that came out empty.

Beside its PDF each figure writes the data it draws as a tidy CSV at ``csv_path``, one row per drawn
point with its panel keys, x value, line and the ``mean``, ``sd`` and ``n`` (runs) of ``summarize``
(table4: the table's frame); each module's docstring names its columns.

Modules: ``registry`` (``FIGURES``, the settings check, the errors; no plotting library),
``table`` (the score-table contract, reading, choosing rows, summaries), ``style`` (how figures
look, PDF metadata), ``lines`` (fig3 to fig6), ``fig7``, ``fig8``, ``table4``, ``dynamics``,
``published`` (the study's top-1 errors beside published ones) and ``comparison`` (which method: paired
differences, ranks, the critical-difference diagram and the report page; numbers from
``imbalance_study.comparison``).
Importing this package loads only ``registry``; every other name is imported from its module on
first use, so that the workflow can import it without pandas or matplotlib.
"""

from __future__ import annotations

import importlib

from .registry import FIGURES, FigureSettingsError, ScoreTableError

_EXPORTS = {
    "table": ("IDENTITY_COLUMNS", "SCORE_COLUMNS", "TABLE_COLUMNS", "BOOLEAN_COLUMNS", "NUMERIC_COLUMNS",
              "TEXT_COLUMNS", "RUN_COLUMNS", "METHOD_ORDER", "IMBALANCE_ORDER", "normalize_scores", "load_scores",
              "only_runs", "write_table", "final_scores", "summarize"),
    "style": ("METRIC_LABELS", "PDF_METADATA", "provenance_metadata"),
    "lines": ("plot_fig3", "plot_fig4", "plot_fig5", "plot_fig6"),
    "fig7": ("plot_fig7",),
    "fig8": ("plot_fig8",),
    "table4": ("table4_frame", "write_table4", "plot_table4"),
    "dynamics": ("plot_dynamics", "generalisation_gap"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_MODULES = ("registry", *_EXPORTS)

__all__ = ["FIGURES", "FigureSettingsError", "ScoreTableError", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    elif name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_MODULES))
