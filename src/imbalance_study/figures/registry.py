"""The registry of figures: each name's plot function (imported on first use), the check of a figure's
settings, and the errors the figures raise.

Light on purpose (no pandas, matplotlib or seaborn): importing ``imbalance_study.figures`` loads only this
module, so that listing the figures costs no pandas or matplotlib. Every plot function is called
``plot(table, pdf_path, csv_path, **settings)``. Its settings are keyword-only parameters: those
with a default in the config schema (workflow/schemas/config.schema.yaml) have none here, since the
workflow always passes them (``catalog`` resolves them, and fig8's and dynamics' ``profile``); the
others default to None, meaning every method or dataset, each run's last
checkpoint, or table4's ROC AUC and accuracy blocks.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping

from .catalog import FIGURES as CATALOG

# name -> (module of this package, plot function), as each figure's catalog entry names it.
_WHERE = {name: tuple(figure.plot.split(":")) for name, figure in CATALOG.items()}


class ScoreTableError(ValueError):
    """The score table cannot give what a figure needs (a column, or any rows to draw)."""


class FigureSettingsError(ValueError):
    """A figure was given a setting it does not take, or not given one it requires."""


def _takes_settings(name: str):
    """Check a figure's settings against its keyword-only parameters, naming the figure on a mismatch:
    a setting it does not take, or a required one (no default) that was not given."""
    def wrap(function):
        parameters = [parameter for parameter in inspect.signature(function).parameters.values()
                      if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
        accepted = [parameter.name for parameter in parameters]
        required = [parameter.name for parameter in parameters if parameter.default is inspect.Parameter.empty]

        @functools.wraps(function)
        def checked(table, pdf_path, csv_path, **settings):
            unknown = sorted(set(settings) - set(accepted))
            if unknown:
                raise FigureSettingsError(f"{name}: unknown setting(s) {unknown}; {name} takes {accepted}")
            missing = [setting for setting in required if setting not in settings]
            if missing:
                raise FigureSettingsError(f"{name}: missing setting(s) {missing}; the workflow passes them, "
                                          f"with their defaults from the config schema")
            return function(table, pdf_path, csv_path, **settings)
        return checked
    return wrap


class _Figures(Mapping):
    """name -> plot function, each imported from its module when first looked up."""

    def __getitem__(self, name: str):
        module, function = _WHERE[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)

    def __contains__(self, name) -> bool:
        return name in _WHERE

    def __iter__(self):
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)

    def __repr__(self) -> str:
        return f"FIGURES({', '.join(_WHERE)})"


FIGURES = _Figures()
