"""Table 4 (the ImageNet table): every method at every imbalance setting, per dataset and metric.

Two layouts (``layout``, the setting ``figures.table4.layout``):

- ``paper`` (the schema's default): the paper's own. One block per dataset and metric; rows: the
  methods, columns: the settings (μ, ρ) in order, values in percent with 2 decimals. A setting with
  several runs, at most ``run_columns`` of them (the setting ``figures.table4.run_columns``), gets
  one column per run, the seed named in its header ("μ = 0.9, ρ = 100, run 1 (seed 1)"); one with
  more runs gets one column of "mean ± sd (n)". A setting's number of runs is the larger of the
  study's (its seeds, each method's run in the column of its seed) and the paper's. Where ``paper``
  says that a dataset repeats one of the paper's experiments (dataset -> experiment, as
  ``imbalance_study.paper.experiment`` names it; the workflow fills it in from the datasets'
  settings) and the paper publishes numbers for a method and metric, the method's row is followed by
  a grey italic row "<method> (paper)" holding them, in the same columns (the paper's run k under
  run k). The best study value of a column is in bold.
- ``settings_rows``: rows = the settings, columns = the methods, each cell "mean ± sd (n)" over the
  runs with 3 decimals (not percent), the best mean of a row in bold.

``table4_frame`` computes the summary that both layouts come from; ``write_table4`` writes it as the
CSV, whatever the layout: per (dataset, metric, setting) ``<method>_mean``, ``<method>_sd`` and
``<method>_n`` (runs), and ``select_on``; when ``paper`` names a dataset with published numbers,
also ``paper_<method>_mean``, ``paper_<method>_sd`` and ``paper_<method>_n`` for each method the
paper publishes (over the paper's runs, as fractions like the study's; n 0 where the paper has
none). ``table4_layout`` gives the cells of the paper layout, one row per cell (what the PDF shows,
the per-run values included; not written). ``plot_table4`` is ``write_table4`` under the figures'
signature. This module computes the numbers; ``table4_render`` draws either layout's PDF from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import paper as published
from .registry import FigureSettingsError, _takes_settings
from .style import PAPER_LABEL
from .table import IMBALANCE_ORDER, _at_checkpoint, _method_order, _scores, _show, summarize, write_table

LAYOUTS = ("paper", "settings_rows")
PERCENT = ("roc_auc", "accuracy")  # shown in percent in the paper layout
KEYS = ["dataset", "metric", "imbalance", "profile", "mu", "rho"]
MISSING = "–"


def _setting_label(imbalance: str, mu, rho) -> str:
    if imbalance == "step":
        return f"μ = {_show(mu)}, ρ = {_show(rho)}"
    return f"{imbalance}, ρ = {_show(rho)}"


def _metrics(metric) -> list[str]:
    if metric is None or isinstance(metric, str):
        return list(dict.fromkeys([metric or "roc_auc", "roc_auc", "accuracy"]))
    return list(metric)


def _final_rows(table: pd.DataFrame, metric, methods, iteration, datasets) -> tuple[list[str], pd.DataFrame]:
    """The metrics of the table, in block order, and their selected test scores at the chosen checkpoint."""
    metrics = _metrics(metric)
    blocks = [_at_checkpoint(_scores(table, "table4", name, methods=methods, datasets=datasets), "table4", iteration)
              for name in metrics]
    rows = pd.concat(blocks, ignore_index=True)
    rows.attrs["diverged"] = blocks[-1].attrs.get("diverged", [])
    return metrics, rows


def _paper_methods(rows: pd.DataFrame) -> set[str]:
    """The study's methods that are the paper's of the same name (sampler, ratio and phases alike)."""
    first = rows.drop_duplicates("method")
    return published.paper_methods(zip(first["method"], first["sampler"], first["sampling_ratio"],
                                       first["two_phase"]))


def _references(paper: dict | None, paper_methods: set, dataset, metric, imbalance, mu, rho, method) -> list[float]:
    if not paper or method not in paper_methods:
        return []
    return published.reference(paper.get(dataset), metric, imbalance, mu, rho, method)


def _frame(metrics: list[str], rows: pd.DataFrame, paper: dict | None) -> pd.DataFrame:
    summary = summarize(rows, KEYS + ["method"])
    methods = _method_order(summary["method"].unique())
    frame = summary[KEYS].drop_duplicates().reset_index(drop=True)
    chosen = rows.groupby(KEYS, dropna=False)["select_on"].agg(lambda splits: "/".join(sorted(set(splits) - {""})))
    frame = frame.merge(chosen.reset_index(), on=KEYS, how="left")
    for method in methods:  # a merge, not a pivot: pandas pivots drop the empty μ of ramp profiles
        own = summary.loc[summary["method"] == method, KEYS + ["mean", "sd", "n"]]
        frame = frame.merge(own.rename(columns={s: f"{method}_{s}" for s in ("mean", "sd", "n")}), on=KEYS, how="left")
        frame[f"{method}_n"] = frame[f"{method}_n"].fillna(0).astype(int)
    frame.insert(2, "setting", [_setting_label(i, m, r) for i, m, r in zip(frame["imbalance"], frame["mu"],
                                                                           frame["rho"])])
    order = {"metric": {m: p for p, m in enumerate(metrics)},
             "imbalance": {k: p for p, k in enumerate(IMBALANCE_ORDER)}}
    frame = frame.assign(_metric=frame["metric"].map(order["metric"]),
                         _imbalance=frame["imbalance"].map(order["imbalance"]).fillna(len(IMBALANCE_ORDER)))
    frame = frame.sort_values(["dataset", "_metric", "_imbalance", "mu", "rho", "profile"], na_position="last")
    frame = frame.drop(columns=["_metric", "_imbalance"]).reset_index(drop=True)
    paper_methods = _paper_methods(rows)
    for method in methods:  # the paper's numbers, only where a dataset repeats a paper experiment
        values = [_references(paper, paper_methods, row.dataset, row.metric, row.imbalance, row.mu, row.rho, method)
                  for row in frame.itertuples()]
        if any(values):
            frame[f"paper_{method}_mean"] = [np.mean(v) if v else np.nan for v in values]
            frame[f"paper_{method}_sd"] = [np.std(v, ddof=1) if len(v) > 1 else (0.0 if v else np.nan) for v in values]
            frame[f"paper_{method}_n"] = [len(v) for v in values]
    frame.attrs["diverged"] = rows.attrs.get("diverged", [])
    frame.attrs["methods"] = methods
    return frame


def table4_frame(table: pd.DataFrame, metric: str | list[str] | None = None, methods=None,
                 iteration: int | None = None, datasets=None, paper: dict | None = None) -> pd.DataFrame:
    """Table 4 as a frame: one row per dataset, metric and imbalance setting; per method its mean, sd and n.

    Test split, no thresholding, the last checkpoint of each run (or ``iteration``); one block of rows
    per metric: ``metric`` first (default ROC AUC), then whichever of ROC AUC and accuracy it is not (a
    list of metrics gives exactly those blocks). The column ``select_on`` names the split a
    learning-rate search chose a row's runs on (empty when none was searched). With ``paper``
    (dataset -> paper experiment) naming a dataset with published numbers, the paper's mean, sd and
    n per method too (``paper_<method>_mean``, ...).
    """
    metrics, rows = _final_rows(table, metric, methods, iteration, datasets)
    return _frame(metrics, rows, paper)


# --- the paper layout -------------------------------------------------------------------------------

def _number(value: float, metric: str) -> float:
    return 100 * value if metric in PERCENT else value


def _text(values: list[float], metric: str) -> str:
    """One value as it is shown, or the mean ± sd (n) of several; a dash for none."""
    if not values:
        return MISSING
    digits = 2 if metric in PERCENT else 3
    shown = [_number(value, metric) for value in values]
    if len(shown) == 1:
        return f"{shown[0]:.{digits}f}"
    return f"{np.mean(shown):.{digits}f} ± {np.std(shown, ddof=1):.{digits}f} ({len(shown)})"


def _layout(frame: pd.DataFrame, rows: pd.DataFrame, run_columns: int, paper: dict | None) -> pd.DataFrame:
    methods = frame.attrs["methods"]
    paper_methods = _paper_methods(rows)
    settings = frame[KEYS].reset_index().rename(columns={"index": "_setting"})
    rows = rows.merge(settings, on=KEYS, how="inner")  # NaN μ (ramps) matches NaN μ
    cells = []
    for (dataset, metric), block in frame.groupby(["dataset", "metric"], sort=False):
        columns, position = [], 0  # per block: (header, run label, seed, setting row, run number or None)
        study: dict = {}  # (method, column position) -> values
        reference: dict = {}
        for index, setting in block.iterrows():
            here = rows[rows["_setting"] == index]
            seeds = sorted(here["seed"].unique())
            papers = {method: _references(paper, paper_methods, dataset, metric, setting["imbalance"], setting["mu"],
                                          setting["rho"], method) for method in methods}
            runs = max([len(seeds)] + [len(values) for values in papers.values()])
            # A learning-rate search keeps one run per method across seeds: no run columns to fill.
            searched = bool(setting["select_on"])
            if 1 < runs <= run_columns and not searched:
                for run in range(runs):
                    seed = seeds[run] if run < len(seeds) else None
                    label = f"run {run + 1}" + (f" (seed {_show(seed)})" if seed is not None else "")
                    columns.append((setting["setting"], label, seed, index, run + 1))
                    for method in methods:
                        study[method, position] = list(here.loc[(here["method"] == method)
                                                                & (here["seed"] == seed), "value"])
                        reference[method, position] = papers[method][run: run + 1]
                    position += 1
            else:  # one run, or too many for a column each: one column (mean ± sd (n) of several)
                columns.append((setting["setting"], "", None, index, None))
                for method in methods:
                    study[method, position] = list(here.loc[here["method"] == method, "value"])
                    reference[method, position] = papers[method]
                position += 1
        with_paper = [method for method in methods if any(reference[method, p] for p in range(position))]
        best = {}
        for column in range(position):
            means = {method: np.mean(study[method, column]) for method in methods if study[method, column]}
            best[column] = max(means, key=means.get) if means else None
        for method in methods:
            sources = [("study", study, method)] + ([("paper", reference, f"{method} ({PAPER_LABEL})")]
                                                    if method in with_paper else [])
            for source, values, row_label in sources:
                for column, (setting, run_label, seed, index, run) in enumerate(columns):
                    shown = [_number(value, metric) for value in values[method, column]]
                    cells.append({
                        "dataset": dataset, "metric": metric, "row": row_label, "method": method, "source": source,
                        "position": column, "column": setting + (f", {run_label}" if run_label else ""),
                        "setting": setting, "run": run, "seed": seed,
                        "value": float(np.mean(shown)) if shown else np.nan,
                        "sd": float(np.std(shown, ddof=1)) if len(shown) > 1 else (0.0 if shown else np.nan),
                        "n": len(shown), "text": _text(values[method, column], metric),
                        "best": source == "study" and best[column] == method})
    return pd.DataFrame(cells)


def table4_layout(table: pd.DataFrame, metric=None, methods=None, iteration: int | None = None, datasets=None, *,
                  run_columns: int, paper: dict | None = None) -> pd.DataFrame:
    """The cells of Table 4's paper layout, one row per cell, in the order shown (what its PDF renders).

    Columns: ``dataset``, ``metric`` (a block each), ``row`` (the row's label: the method, or
    "<method> (paper)"), ``method``, ``source`` (study or paper), ``position`` (of the column in its
    block, from 0), ``column`` (its header: the setting, then ", run k (seed s)" for one run's
    column), ``setting``, ``run`` (k, or None for a setting's only column), ``seed``, ``value`` (in
    percent for ROC AUC and accuracy; the mean of a column of several runs), ``sd``, ``n`` (runs),
    ``text`` (the cell as shown) and ``best`` (the best study value of its column). ``run_columns``
    is the setting ``figures.table4.run_columns`` (its default lives in the config schema).
    """
    metrics, rows = _final_rows(table, metric, methods, iteration, datasets)
    frame = _frame(metrics, rows, paper)
    return _layout(frame, rows, run_columns, paper)


def table4_grids(layout: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, metric) -> the block's cells as shown: index the row labels, columns the headers."""
    grids = {}
    for key, block in layout.groupby(["dataset", "metric"], sort=False):
        rows = list(dict.fromkeys(block["row"]))
        columns = list(block.drop_duplicates("position").sort_values("position")["column"])
        grid = block.pivot(index="row", columns="position", values="text").loc[rows]
        grid.columns = columns
        grid.index.name = None
        grids[key] = grid
    return grids


def write_table4(table: pd.DataFrame, csv_path: str | Path, pdf_path: str | Path, metric=None, methods=None,
                 iteration: int | None = None, datasets=None, *, layout: str, run_columns: int,
                 paper: dict | None = None) -> pd.DataFrame:
    """Table 4: the CSV (``table4_frame``, whatever the layout) and the PDF in ``layout``.

    ``layout`` and ``run_columns`` have no defaults here: they live in the config schema, which the
    workflow passes (through ``plot_table4``). Returns the frame written to the CSV.
    """
    # Imported here, not at the top: table4_render reads this module's cells and constants.
    from .table4_render import render_paper, render_settings_rows

    if layout not in LAYOUTS:
        raise FigureSettingsError(f"table4: unknown layout {layout!r}; the layouts are {list(LAYOUTS)}")
    if run_columns < 1:
        raise FigureSettingsError(f"table4: run_columns must be at least 1, not {run_columns}")
    metrics, rows = _final_rows(table, metric, methods, iteration, datasets)
    frame = _frame(metrics, rows, paper)
    cells = _layout(frame, rows, run_columns, paper) if layout == "paper" else None
    write_table(frame, csv_path)
    if layout == "paper":
        render_paper(cells, pdf_path, frame, iteration, run_columns)
    else:
        render_settings_rows(frame, pdf_path, iteration)
    return frame


@_takes_settings("table4")
def plot_table4(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, layout: str, run_columns: int,
                metric=None, methods=None, iteration: int | None = None, datasets=None,
                paper: dict | None = None) -> None:
    """Table 4 under the figures' signature: the PDF at ``pdf_path``, the CSV (the table's frame) at ``csv_path``.

    ``layout`` and ``run_columns`` have their defaults in the config schema, which the workflow
    passes; ``paper`` maps a dataset to the paper experiment it repeats (filled in by the
    workflow, ``catalog.plan_figures``; None: no paper numbers).
    """
    write_table4(table, csv_path, pdf_path, metric=metric, methods=methods, iteration=iteration, datasets=datasets,
                 layout=layout, run_columns=run_columns, paper=paper)
