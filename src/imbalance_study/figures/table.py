"""The tidy score table (results/scores.csv): its columns, reading and writing it, and choosing rows.

One row per score, long format (``TABLE_COLUMNS``). ``load_scores`` reads score files and refuses
any that lacks a column of the contract; ``normalize_scores`` reads booleans from any spelling and
numbers as numbers. The figures draw from the rows ``_scores`` chooses (selected runs, the paper's
variants: ``at_taus``, one metric, overall scores: group all, class -1), narrowed step by step by
``_keep`` so that an empty result raises ``ScoreTableError`` naming the figure and the selection
that came out empty; ``_at_checkpoint`` keeps the checkpoint each run reports (its last, or the one
early stopping chose) or a named one, and ``summarize`` gives mean, sd and n per group.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from .registry import ScoreTableError

# The score-table contract (results/scores.csv): one row per score, long format.
IDENTITY_COLUMNS = ("dataset", "profile", "imbalance", "mu", "n_minority", "rho", "seed", "method", "variant",
                    "sampler", "sampling_ratio", "two_phase", "base_lr", "selected", "select_on", "select_metric",
                    "diverged_at")
SCORE_COLUMNS = ("iteration", "split", "thresholded", "metric", "class", "group", "value")
TABLE_COLUMNS = IDENTITY_COLUMNS + SCORE_COLUMNS
BOOLEAN_COLUMNS = ("two_phase", "selected", "thresholded")
NUMERIC_COLUMNS = ("mu", "n_minority", "rho", "seed", "sampling_ratio", "base_lr", "iteration", "class", "value",
                   "diverged_at")
TEXT_COLUMNS = ("select_on", "select_metric")
# The paper's variants in the ``tau`` column (as metrics.PLAIN_TAU and THRESHOLDED_TAU, not imported:
# the figure jobs would pay for scikit-learn): the plain outputs and thresholding.
PAPER_TAUS = (0.0, 1.0)
# One training run: a learning-rate search has several runs (variants) per (dataset, profile, seed, method).
RUN_COLUMNS = ("dataset", "profile", "seed", "method", "variant")

METHOD_ORDER = ("baseline", "over", "under", "twophase_over", "twophase_under")
IMBALANCE_ORDER = ("step", "linear", "exponential")
TRUE_WORDS = {"true", "t", "yes", "y", "1", "1.0"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "0.0", ""}


# --- reading and writing the table ------------------------------------------------------------------

def _as_bool(series: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(bool)
    words = series.map(lambda value: "" if pd.isna(value) else str(value).strip().lower())
    unknown = set(words) - TRUE_WORDS - FALSE_WORDS
    if unknown:
        raise ScoreTableError(f"column {column}: cannot read {sorted(unknown)[:5]} as True/False")
    return words.isin(TRUE_WORDS)


def normalize_scores(table: pd.DataFrame, figure: str = "score table") -> pd.DataFrame:
    """The table with every contract column present, booleans as bools and numbers as numbers."""
    missing = [column for column in TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise ScoreTableError(f"{figure}: the score table lacks columns {missing}")
    table = table.copy()
    for column in BOOLEAN_COLUMNS:
        table[column] = _as_bool(table[column], column)
    for column in NUMERIC_COLUMNS:
        try:
            table[column] = pd.to_numeric(table[column])
        except (ValueError, TypeError) as error:
            raise ScoreTableError(f"{figure}: column {column} is not numeric ({error})") from error
    table["sampler"] = table["sampler"].fillna("none")
    for column in TEXT_COLUMNS:
        table[column] = table[column].map(lambda value: "" if pd.isna(value) else str(value))
    return table


def load_scores(paths) -> pd.DataFrame:
    """Concatenate score files, refusing any that lacks a column of the contract."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    tables = []
    for path in paths:
        try:
            table = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ScoreTableError(f"{path}: cannot read the score file ({error})") from error
        missing = [column for column in TABLE_COLUMNS if column not in table.columns]
        if missing:
            raise ScoreTableError(f"{path}: score file lacks columns {missing}")
        tables.append(table)
    if not tables:
        raise ScoreTableError("no score files given")
    return normalize_scores(pd.concat(tables, ignore_index=True))


def only_runs(table: pd.DataFrame, run_keys) -> pd.DataFrame:
    """The rows of the given runs, each by its key (dataset, profile, seed, run name: the table's
    ``variant``, as ``plan.Run.key``): a bundle's score file also holds runs that a figure does not draw."""
    wanted = pd.DataFrame([tuple(key) for key in run_keys], columns=["dataset", "profile", "seed", "variant"])
    wanted = wanted.drop_duplicates()
    wanted = wanted.astype({"seed": table["seed"].dtype})
    return table.merge(wanted, on=list(wanted.columns), how="inner")


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a frame as CSV (no index), atomically: a killed job leaves no truncated file."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def write_plotted(frame: pd.DataFrame, path: str | Path, columns: list[str], order: list[str],
                  ranks: dict | None = None) -> pd.DataFrame:
    """The data a figure draws, as a tidy CSV: ``columns`` in that order, rows sorted by ``order``, with
    methods in ``METHOD_ORDER`` and the columns of ``ranks`` in the order it gives them (values it does
    not list last); returns the frame written."""
    frame = frame[columns].reset_index(drop=True)
    ranks = dict(ranks or {})
    if "method" in order:
        ranks.setdefault("method", _method_order(frame["method"].unique()))
    sort_keys = {key: frame[key].map({value: rank for rank, value in enumerate(ranks[key])}).fillna(len(ranks[key]))
                 if key in ranks else frame[key] for key in order}
    positions = pd.DataFrame(sort_keys).sort_values(order, na_position="last", kind="stable").index
    frame = frame.loc[positions].reset_index(drop=True)
    frame["n"] = frame["n"].astype(int)
    for column in set(columns) & {"n_minority", "iteration"}:  # whole numbers, float only for the NaN of ramps
        if pd.api.types.is_float_dtype(frame[column]) and (frame[column].dropna() % 1 == 0).all():
            frame[column] = frame[column].astype("Int64")
    write_table(frame, path)
    return frame


# --- choosing rows ----------------------------------------------------------------------------------

def _keep(rows: pd.DataFrame, figure: str, keep, what: str, column: str | None = None) -> pd.DataFrame:
    """The rows that ``keep(rows)`` marks; none at all is an error naming the figure and what was wanted."""
    kept = rows[keep(rows)]
    if kept.empty:
        present = ""
        if column is not None:
            values = sorted({_show(value) for value in rows[column].unique()})
            present = f"; the candidate rows have {column} {values}"
        raise ScoreTableError(f"{figure}: nothing to draw: no selected scores with {what}{present}")
    return kept


def _show(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "empty" if math.isnan(value) else f"{value:g}"
    return str(value)


def _method_order(methods) -> list[str]:
    methods = set(methods)
    known = [method for method in METHOD_ORDER if method in methods]
    return known + sorted(methods - set(known))


def _methods_wanted(methods) -> list[str] | None:
    if methods is None:
        return None
    return [methods] if isinstance(methods, str) else list(methods)


def at_taus(rows: pd.DataFrame, taus=PAPER_TAUS) -> pd.Series:
    """Which rows were scored at one of ``taus``: by default the paper's variants, the plain
    outputs (tau 0) and thresholding (tau 1).

    The other taus of post-hoc logit adjustment (``scoring.logit_adjustment_taus``) are thresholded
    rows too (``metrics``), so every reader of thresholded rows filters here; readers of plain rows
    need not. Rows without a tau (files written before the grid) are tau 1 when thresholded, else 0.
    """
    thresholded = _as_bool(rows["thresholded"], "thresholded").astype(float)
    tau = pd.to_numeric(rows["tau"]).fillna(thresholded) if "tau" in rows.columns else thresholded
    return tau.isin([float(value) for value in taus])


def _selected(table: pd.DataFrame, figure: str, *, methods=None, datasets=None, imbalance: str | None = None,
              taus=PAPER_TAUS) -> pd.DataFrame:
    """The selected rows of the wanted datasets, kind of imbalance and methods (all when None),
    scored at ``taus`` (``at_taus``: the paper's two variants unless a tau of the grid is asked for).

    Runs that diverged are never selected; those of the figure's datasets, imbalance and methods are
    named in ``rows.attrs["diverged"]``, for its title to say they were left out.
    """
    rows = normalize_scores(table, figure)
    wanted = (rows["dataset"].isin([datasets] if isinstance(datasets, str) else datasets) if datasets else True) \
        & ((rows["imbalance"] == imbalance) if imbalance is not None else True) \
        & (rows["method"].isin(_methods_wanted(methods)) if methods else True)
    diverged = rows[wanted & rows["diverged_at"].notna()].drop_duplicates(list(RUN_COLUMNS))
    diverged = [f"{run.dataset}/{run.profile}/seed{run.seed}/{run.variant} at iteration {int(run.diverged_at)}"
                for run in diverged.itertuples()]
    rows = _keep(rows, figure, lambda r: r["selected"],
                 "selected = True" + (f" (runs that diverged are never selected: {', '.join(diverged)})"
                                      if diverged else ""))
    rows.attrs["diverged"] = diverged
    rows = _keep(rows, figure, lambda r: at_taus(r, taus), f"tau in {[float(tau) for tau in taus]}",
                 "tau" if "tau" in rows.columns else None)
    if datasets:
        datasets = [datasets] if isinstance(datasets, str) else list(datasets)
        rows = _keep(rows, figure, lambda r: r["dataset"].isin(datasets), f"dataset in {datasets}", "dataset")
    if imbalance is not None:
        rows = _keep(rows, figure, lambda r: r["imbalance"] == imbalance, f"{imbalance} imbalance", "imbalance")
    methods = _methods_wanted(methods)
    if methods:
        rows = _keep(rows, figure, lambda r: r["method"].isin(methods), f"method in {methods}", "method")
    return rows


def _scores(table: pd.DataFrame, figure: str, metric: str, *, splits=("test",), thresholded: bool | None = False,
            imbalance: str | None = None, methods=None, datasets=None, taus=PAPER_TAUS) -> pd.DataFrame:
    """Selected overall scores of one metric, narrowed step by step so that an empty result says why.

    A method with post-hoc logit adjustment at tau t: ``methods=[method], thresholded=True, taus=[t]``.
    """
    rows = _selected(table, figure, methods=methods, datasets=datasets, imbalance=imbalance, taus=taus)
    rows = _keep(rows, figure, lambda r: r["metric"] == metric, f"metric {metric}", "metric")
    rows = _keep(rows, figure, lambda r: r["split"].isin(splits), f"split in {list(splits)}", "split")
    rows = _keep(rows, figure, lambda r: (r["group"] == "all") & (r["class"] == -1), "group all (class -1)", "group")
    if thresholded is not None:
        rows = _keep(rows, figure, lambda r: r["thresholded"] == thresholded, f"thresholded = {thresholded}",
                     "thresholded")
    return rows


def _at_checkpoint(rows: pd.DataFrame, figure: str, iteration: int | None) -> pd.DataFrame:
    """The checkpoint each run reports (``reported_at``: its last, or where early stopping chose), or
    the named one."""
    if iteration is None:
        last = rows.groupby(list(RUN_COLUMNS), dropna=False)["iteration"].transform("max")
        reported = pd.to_numeric(rows["reported_at"]).fillna(last) if "reported_at" in rows.columns else last
        return rows[rows["iteration"] == reported]
    chosen = rows[rows["iteration"] == iteration]
    if chosen.empty:
        raise ScoreTableError(f"{figure}: no scores at iteration {iteration}; checkpoints are "
                              f"{sorted(int(i) for i in rows['iteration'].unique())}")
    return chosen


def final_scores(table: pd.DataFrame, metric: str, iteration: int | None = None, *, split: str = "test",
                 thresholded: bool | None = False, figure: str = "scores") -> pd.DataFrame:
    """Selected overall scores of one split at the chosen checkpoint (the one each run reports by default)."""
    return _at_checkpoint(_scores(table, figure, metric, splits=(split,), thresholded=thresholded),
                          figure, iteration)


def summarize(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, standard deviation and number of runs of ``value`` per group (sd 0 for a single run)."""
    summary = rows.groupby(by, dropna=False)["value"].agg(mean="mean", sd="std", n="count").reset_index()
    summary["sd"] = summary["sd"].fillna(0.0)
    return summary
