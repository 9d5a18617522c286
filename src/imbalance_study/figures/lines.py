"""Figures 3, 4, 5 and 6: a test metric against the imbalance, one line of mean ± sd per method.

All four share ``_lines_by_method``: one row of panels per dataset, the runs' last checkpoint (or
``iteration``), no thresholding (fig6 draws each method without and with it). Each writes the
points it draws to its CSV, one row per point: ``dataset``, ``imbalance``, the panel key
(``n_minority`` for fig3 and fig6, ``rho`` for fig4, none for fig5), the x value (``rho``, or
``n_minority`` for fig4), ``method``, ``thresholded`` (fig6 only), ``metric``, and ``mean``, ``sd``
and ``n`` (runs) of the metric as ``summarize`` computes them.

Figures 3 and 4 also draw the paper's published values (``imbalance_study.paper``) where their
setting ``paper`` says that a dataset repeats one of the paper's experiments (dataset -> experiment;
the workflow fills it in from the datasets' settings) and the paper has numbers for the metric,
method and setting of a point: a hollow star of the method's colour per published run, labelled
"paper" in the legend. Their CSV then has three more columns, ``paper_mean``, ``paper_sd`` and
``paper_n`` (over the paper's runs, in the study's unit; n 0 where the paper has none); without
such a dataset nothing changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import paper as published
from .registry import _takes_settings
from .style import (PAPER_LABEL, _checkpoint_text, _collect, _finish, _grid, _line, _log_ticks, _metric_label,
                    _minority_title, _ordered, _panels_by, _paper_handle, _paper_marks, _spread_text, _style, _theme)
from .table import _at_checkpoint, _method_order, _scores, _show, summarize, write_plotted


def _paper_points(rows: pd.DataFrame, paper: dict | None, metric: str, x: str, panel: str | None) -> pd.DataFrame:
    """The paper's values at the points drawn: per dataset, panel key, x and method, a list of values.

    Empty unless ``paper`` names a dataset of the rows as a paper experiment with numbers for the
    metric; only the study's methods that are the paper's (``paper.paper_methods``) get values.
    """
    columns = ["dataset", "imbalance", x, "method"] + ([panel] if panel else []) + ["paper"]
    if not paper:
        return pd.DataFrame(columns=columns)
    first = rows.drop_duplicates("method")
    methods = published.paper_methods(zip(first["method"], first["sampler"], first["sampling_ratio"],
                                          first["two_phase"]))
    points = rows[rows["method"].isin(methods)].drop_duplicates(
        ["dataset", "imbalance", "mu", "rho", "n_minority", "method"])
    found = []
    for point in points.itertuples(index=False):
        values = published.reference(paper.get(point.dataset), metric, point.imbalance, point.mu, point.rho,
                                     point.method)
        if values:
            found.append({key: getattr(point, key) for key in columns[:-1]} | {"paper": values})
    return pd.DataFrame(found, columns=columns)


def _lines_by_method(rows: pd.DataFrame, pdf_path, csv_path, *, x: str, panel: str | None, panel_title,
                     x_label: str, metric: str, title: str, log_x: bool, thresholding_variants: bool = False,
                     paper: dict | None = None) -> None:
    """Lines of mean ± sd per method (and per thresholding when asked), panels per ``panel`` and dataset;
    the paper's values as hollow stars where ``paper`` names a dataset's experiment and it has some."""
    keys = ["dataset", "imbalance", x, "method", "thresholded"] + ([panel] if panel else [])
    summary = summarize(rows, keys)
    methods = _method_order(summary["method"].unique())
    references = _paper_points(rows, paper, metric, x, panel)
    variants = [False, True] if thresholding_variants else [False]
    labels = [method + (" + thresholding" if thresholded else "") for method in methods for thresholded in variants]
    style_sheet, context = _theme()
    with style_sheet, context:
        figure, cells = _grid(_panels_by(summary, panel), panel_title)
        handles: dict = {}
        plotted = []
        for dataset, key, axis in cells:
            here = summary[summary["dataset"] == dataset]
            if panel:
                here = here[here[panel] == key]
            for method in methods:
                for thresholded in variants:
                    line = here[(here["method"] == method) & (here["thresholded"] == thresholded)]
                    if line.empty:
                        continue
                    plotted.append(line)
                    label = method + (" + thresholding" if thresholded else "")
                    _line(axis, line, x, label, linestyle="--" if thresholded else "-", **_style(method, methods))
                marks = references[(references["dataset"] == dataset) & (references["method"] == method)
                                   & references[x].isin(here.loc[here["method"] == method, x])]
                if panel:
                    marks = marks[marks[panel] == key]
                for point in marks.itertuples(index=False):
                    values = getattr(point, "paper")
                    _paper_marks(axis, [getattr(point, x)] * len(values), values, _style(method, methods)["color"])
                    handles[PAPER_LABEL] = _paper_handle()
            if log_x:
                _log_ticks(axis, here[x])
            else:
                axis.set_xticks(sorted(here[x].unique()))
                axis.set_xticklabels([_show(v) for v in sorted(here[x].unique())])
            axis.set_xlabel(x_label)
            axis.set_ylabel(_metric_label(metric))
            _collect(handles, axis)
        marked = PAPER_LABEL in handles
        source = f"\nhollow stars: the paper's published values ({published.SOURCE})" if marked else ""
        _finish(figure, pdf_path, f"{title}\n{_spread_text(rows, summary)}{source}",
                _ordered(handles, labels + [PAPER_LABEL]), "method")
    panel_keys = ["dataset", "imbalance"] + ([panel] if panel else [])
    variant_keys = ["thresholded"] if thresholding_variants else []
    drawn = pd.concat(plotted, ignore_index=True).assign(metric=metric)
    extra = []
    if marked:  # the paper's values beside the points they mark
        drawn = drawn.merge(references, on=["dataset", "imbalance", x, "method"] + ([panel] if panel else []),
                            how="left")
        values = [value if isinstance(value, list) else [] for value in drawn["paper"]]
        drawn["paper_mean"] = [np.mean(v) if v else np.nan for v in values]
        drawn["paper_sd"] = [np.std(v, ddof=1) if len(v) > 1 else (0.0 if v else np.nan) for v in values]
        drawn["paper_n"] = [len(v) for v in values]
        extra = ["paper_mean", "paper_sd", "paper_n"]
    write_plotted(drawn, csv_path, panel_keys + [x, "method"] + variant_keys + ["metric", "mean", "sd", "n"] + extra,
                  order=panel_keys + ["method"] + variant_keys + [x])


@_takes_settings("fig3")
def plot_fig3(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str, methods=None,
              iteration: int | None = None, datasets=None, paper: dict | None = None) -> None:
    """Figure 3: a metric against the imbalance ratio ρ (log x) for step imbalance, without thresholding.

    One line per method, one panel per number of minority classes, one row of panels per dataset;
    the paper's values as hollow stars where ``paper`` (dataset -> paper experiment) has some.
    """
    rows = _at_checkpoint(_scores(table, "fig3", metric, imbalance="step", methods=methods, datasets=datasets),
                          "fig3", iteration)
    _lines_by_method(rows, pdf_path, csv_path, x="rho", panel="n_minority", panel_title=_minority_title,
                     x_label="Imbalance ratio ρ", metric=metric, log_x=True, paper=paper,
                     title=f"Fig. 3: {_metric_label(metric)} vs step imbalance ratio, test set, "
                           f"{_checkpoint_text(iteration)}")


@_takes_settings("fig4")
def plot_fig4(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str, methods=None,
              iteration: int | None = None, datasets=None, paper: dict | None = None) -> None:
    """Figure 4: a metric against the number of minority classes for step imbalance, one panel per ρ;
    the paper's values as hollow stars where ``paper`` (dataset -> paper experiment) has some."""
    rows = _at_checkpoint(_scores(table, "fig4", metric, imbalance="step", methods=methods, datasets=datasets),
                          "fig4", iteration)
    _lines_by_method(rows, pdf_path, csv_path, x="n_minority", panel="rho",
                     panel_title=lambda dataset, rho: f"{dataset}: ρ = {_show(rho)}",
                     x_label="Number of minority classes", metric=metric, log_x=False, paper=paper,
                     title=f"Fig. 4: {_metric_label(metric)} vs number of minority classes (step "
                           f"imbalance), test set, {_checkpoint_text(iteration)}")


@_takes_settings("fig5")
def plot_fig5(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str, imbalance: str,
              methods=None, iteration: int | None = None, datasets=None) -> None:
    """Figure 5: a metric against ρ (log x) for ``imbalance`` (linear or exponential), one panel per dataset."""
    rows = _at_checkpoint(_scores(table, "fig5", metric, imbalance=imbalance, methods=methods, datasets=datasets),
                          "fig5", iteration)
    _lines_by_method(rows, pdf_path, csv_path, x="rho", panel=None, panel_title=lambda dataset, key: dataset,
                     x_label="Imbalance ratio ρ", metric=metric, log_x=True,
                     title=f"Fig. 5: {_metric_label(metric)} vs {imbalance} imbalance ratio, test set, "
                           f"{_checkpoint_text(iteration)}")


@_takes_settings("fig6")
def plot_fig6(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str, methods=None,
              iteration: int | None = None, datasets=None) -> None:
    """Figure 6: Figure 3 with accuracy, each method without (solid) and with thresholding (dashed)."""
    rows = _at_checkpoint(_scores(table, "fig6", metric, imbalance="step", methods=methods, datasets=datasets,
                                  thresholded=None), "fig6", iteration)
    _lines_by_method(rows, pdf_path, csv_path, x="rho", panel="n_minority", panel_title=_minority_title,
                     x_label="Imbalance ratio ρ", metric=metric, log_x=True, thresholding_variants=True,
                     title=f"Fig. 6: {_metric_label(metric)} vs step imbalance ratio, without and with "
                           f"thresholding (dashed), test set, {_checkpoint_text(iteration)}")
