"""The tidy score table and the paper's figures drawn from it.

Every figure is a function ``plot_<name>(table, path, **settings)`` registered in ``FIGURES`` under
its name (fig3 ... fig8, table4), so that one script (scripts/plot_figure.py) draws any of them with
the settings of the config key ``figures.<name>``. Each draws only from the score table: the rows
marked ``selected`` (call ``selection.mark_selected`` first on per-run files), the test split (fig8
also the training split), overall scores (group all, class -1), at the last checkpoint of each run
unless a setting ``iteration`` names one, with the spread over repeats (mean ± 1 sd) and the number of
repeats in its title, one row of panels per dataset, methods in ``METHOD_ORDER`` then the others
alphabetically. When a plotted run was chosen by a learning-rate search the title names the split it
was chosen on (``select_on``). A table with nothing to draw raises ``ScoreTableError`` naming the
figure and the selection that came out empty; a setting the figure does not take raises
``FigureSettingsError``.

Settings (all optional): ``metric``; ``methods`` (restricts to these method names; the order stays
``METHOD_ORDER``); ``iteration`` (not fig8, which draws every checkpoint); ``datasets``; fig7 also
``rho``; fig8 ``profile``; fig5 ``imbalance``.

``table4`` writes a CSV beside its PDF: ``FIGURES["table4"](table, pdf_path, csv_path=...)``
(``write_table4`` takes the paths the other way round). The generic script passes every named output
of its rule other than ``pdf`` as ``<name>_path``, so the rule ``table4`` (outputs pdf and csv) calls
``plot_table4(table, pdf, csv_path=csv, **settings)``.
"""

from __future__ import annotations

import functools
import inspect
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .atomic import atomic_path  # noqa: E402

# The score-table contract (results/scores.csv): one row per score, long format.
IDENTITY_COLUMNS = ("dataset", "profile", "imbalance", "mu", "n_minority", "rho", "seed", "method", "variant",
                    "sampler", "sampling_ratio", "two_phase", "base_lr", "selected", "select_on", "select_metric")
SCORE_COLUMNS = ("iteration", "split", "thresholded", "metric", "class", "group", "value")
TABLE_COLUMNS = IDENTITY_COLUMNS + SCORE_COLUMNS
BOOLEAN_COLUMNS = ("two_phase", "selected", "thresholded")
NUMERIC_COLUMNS = ("mu", "n_minority", "rho", "seed", "sampling_ratio", "base_lr", "iteration", "class", "value")
TEXT_COLUMNS = ("select_on", "select_metric")
# One training run: a learning-rate search has several runs (variants) per (dataset, profile, seed, method).
RUN_COLUMNS = ("dataset", "profile", "seed", "method", "variant")

METRIC_LABELS = {"roc_auc": "ROC AUC", "accuracy": "Accuracy", "recall": "Recall", "loss": "Loss"}
METHOD_ORDER = ("baseline", "over", "under", "twophase_over", "twophase_under")
IMBALANCE_ORDER = ("step", "linear", "exponential")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
TRUE_WORDS = {"true", "t", "yes", "y", "1", "1.0"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "0.0", ""}


# What made a figure, written into its PDF's metadata (Subject); set by the figure rule's script.
PDF_METADATA: dict = {}


def provenance_metadata(config: dict) -> dict:
    """PDF metadata naming the config (its sha256) and the software versions that drew a figure."""
    from .study import provenance

    made_by = provenance(config)
    versions = ", ".join(f"{package} {number}" for package, number in made_by["software"].items())
    return {"Subject": f"config sha256 {made_by['config_sha256']}; {versions}", "Creator": "imbalance-study"}


class ScoreTableError(ValueError):
    """The score table cannot give what a figure needs (a column, or any rows to draw)."""


class FigureSettingsError(ValueError):
    """A figure was given a setting it does not take."""


# --- reading the table ------------------------------------------------------------------------------

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


def only_runs(table: pd.DataFrame, runs) -> pd.DataFrame:
    """The rows of the given runs (``study.Run``: dataset, profile, seed, method as the run's variant):
    a bundle's score file also holds runs that a figure does not draw."""
    wanted = pd.DataFrame([(run.dataset, run.profile, run.seed, run.method) for run in runs],
                          columns=["dataset", "profile", "seed", "variant"]).drop_duplicates()
    return table.merge(wanted, on=list(wanted.columns), how="inner")


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


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


def _scores(table: pd.DataFrame, figure: str, metric: str, *, splits=("test",), thresholded: bool | None = False,
            imbalance: str | None = None, methods=None, datasets=None) -> pd.DataFrame:
    """Selected overall scores of one metric, narrowed step by step so that an empty result says why."""
    rows = normalize_scores(table, figure)
    rows = _keep(rows, figure, lambda r: r["selected"], "selected = True")
    if datasets:
        datasets = [datasets] if isinstance(datasets, str) else list(datasets)
        rows = _keep(rows, figure, lambda r: r["dataset"].isin(datasets), f"dataset in {datasets}", "dataset")
    if imbalance is not None:
        rows = _keep(rows, figure, lambda r: r["imbalance"] == imbalance, f"{imbalance} imbalance", "imbalance")
    methods = _methods_wanted(methods)
    if methods:
        rows = _keep(rows, figure, lambda r: r["method"].isin(methods), f"method in {methods}", "method")
    rows = _keep(rows, figure, lambda r: r["metric"] == metric, f"metric {metric}", "metric")
    rows = _keep(rows, figure, lambda r: r["split"].isin(splits), f"split in {list(splits)}", "split")
    rows = _keep(rows, figure, lambda r: (r["group"] == "all") & (r["class"] == -1), "group all (class -1)", "group")
    if thresholded is not None:
        rows = _keep(rows, figure, lambda r: r["thresholded"] == thresholded, f"thresholded = {thresholded}",
                     "thresholded")
    return rows


def _at_checkpoint(rows: pd.DataFrame, figure: str, iteration: int | None) -> pd.DataFrame:
    """Each run's last checkpoint, or the named one."""
    if iteration is None:
        last = rows.groupby(list(RUN_COLUMNS), dropna=False)["iteration"].transform("max")
        return rows[rows["iteration"] == last]
    chosen = rows[rows["iteration"] == iteration]
    if chosen.empty:
        raise ScoreTableError(f"{figure}: no scores at iteration {iteration}; checkpoints are "
                              f"{sorted(int(i) for i in rows['iteration'].unique())}")
    return chosen


def final_scores(table: pd.DataFrame, metric: str, iteration: int | None = None, *, split: str = "test",
                 thresholded: bool | None = False, figure: str = "scores") -> pd.DataFrame:
    """Selected overall scores of one split at the chosen checkpoint (the last of each run by default)."""
    return _at_checkpoint(_scores(table, figure, metric, splits=(split,), thresholded=thresholded),
                          figure, iteration)


def summarize(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, standard deviation and number of runs of ``value`` per group (sd 0 for a single run)."""
    summary = rows.groupby(by, dropna=False)["value"].agg(mean="mean", sd="std", n="count").reset_index()
    summary["sd"] = summary["sd"].fillna(0.0)
    return summary


# --- drawing ----------------------------------------------------------------------------------------

def _style(method: str, every_method) -> dict:
    """A method's colour and marker, the same in every figure of a study."""
    order = _method_order(set(every_method) | set(METHOD_ORDER))
    position = order.index(method)
    palette = sns.color_palette("colorblind", 10)
    return {"color": palette[position % len(palette)], "marker": MARKERS[position % len(MARKERS)]}


def _line(axis, summary: pd.DataFrame, x: str, label: str, color, marker: str, linestyle: str = "-") -> None:
    summary = summary.sort_values(x)
    axis.plot(summary[x], summary["mean"], color=color, marker=marker, linestyle=linestyle, label=label,
              markersize=4.5, linewidth=1.4)
    axis.fill_between(summary[x], summary["mean"] - summary["sd"], summary["mean"] + summary["sd"],
                      color=color, alpha=0.15, linewidth=0)


def _repeats(*summaries: pd.DataFrame) -> str:
    counts = pd.concat([summary["n"] for summary in summaries])
    low, high = int(counts.min()), int(counts.max())
    return f"{low} repeat{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repeats"


def _grid(panels: dict, title, width: float = 3.4, height: float = 2.8, sharey="row"):
    """One row of panels per dataset; ``panels`` maps a dataset to its panel keys, ``title(dataset, key)``."""
    n_rows, n_columns = len(panels), max(len(keys) for keys in panels.values())
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(width * n_columns + 1.0, height * n_rows + 1.4),
                                squeeze=False, sharey=sharey, layout="constrained")
    cells = []
    for row, (dataset, keys) in enumerate(panels.items()):
        for column in range(n_columns):
            axis = axes[row, column]
            if column >= len(keys):
                axis.set_visible(False)
                continue
            axis.set_title(title(dataset, keys[column]), fontsize="medium")
            axis.tick_params(labelleft=True)
            cells.append((dataset, keys[column], axis))
    return figure, cells


def _panels_by(rows: pd.DataFrame, column: str | None, order=None) -> dict:
    panels = {}
    for dataset in sorted(rows["dataset"].unique()):
        if column is None:
            panels[dataset] = [None]
            continue
        values = [v for v in rows.loc[rows["dataset"] == dataset, column].unique() if not pd.isna(v)]
        panels[dataset] = order(values) if order else sorted(values)
    return panels


def _log_ticks(axis, values) -> None:
    values = sorted({float(v) for v in values if not pd.isna(v)})
    axis.set_xscale("log")
    axis.set_xticks(values)
    axis.set_xticklabels([f"{v:g}" for v in values])
    axis.minorticks_off()


def _finish(figure, path, title: str, handles: dict, legend_title: str | None = None, pages=None) -> None:
    """Legend below the panels (so that neither it nor the title is cut or overlapped), title wrapped to fit.

    Saved to ``path``, or as the next page of ``pages`` (a multi-page PDF) when given.
    """
    width = figure.get_figwidth()
    if handles:
        columns = max(1, min(len(handles), int(width / 2.6)))
        figure.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", ncols=columns,
                      title=legend_title, frameon=False)
    characters = max(40, int(width * 10))
    figure.suptitle("\n".join(textwrap.fill(line, characters) for line in title.split("\n")))
    if pages is not None:
        pages.savefig(figure, bbox_inches="tight")
    else:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, bbox_inches="tight", metadata=PDF_METADATA)
    plt.close(figure)


def _collect(handles: dict, axis) -> None:
    for handle, label in zip(*axis.get_legend_handles_labels()):
        handles.setdefault(label, handle)


def _ordered(handles: dict, labels: list[str]) -> dict:
    return {label: handles[label] for label in labels if label in handles}


def _theme():
    return sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1)


def _checkpoint_text(iteration) -> str:
    return "last checkpoint" if iteration is None else f"iteration {iteration}"


def _selection_text(rows: pd.DataFrame) -> str:
    """Which split a learning-rate search chose the plotted runs on; empty when none was searched."""
    splits = sorted(set(rows["select_on"]) - {""})
    if not splits:
        return ""
    whose = "learning rate" if (rows["select_on"] != "").all() else "searched runs' learning rate"
    text = f"; {whose} selected on the {' / '.join(splits)} split"
    return text + (" (optimistic)" if "test" in splits else "")


def _spread_text(rows: pd.DataFrame, *summaries: pd.DataFrame) -> str:
    return f"(mean ± 1 sd over {_repeats(*summaries)}{_selection_text(rows)})"


def _takes_settings(name: str):
    """Check a figure's settings against its keyword-only parameters, naming the figure on a mismatch."""
    def wrap(function):
        accepted = [parameter.name for parameter in inspect.signature(function).parameters.values()
                    if parameter.kind is inspect.Parameter.KEYWORD_ONLY]

        @functools.wraps(function)
        def checked(table, path, **settings):
            unknown = sorted(set(settings) - set(accepted))
            if unknown:
                raise FigureSettingsError(f"{name}: unknown setting(s) {unknown}; {name} takes {accepted}")
            return function(table, path, **settings)
        return checked
    return wrap


def _lines_by_method(rows: pd.DataFrame, path, *, x: str, panel: str | None, panel_title,
                     x_label: str, y_label: str, title: str, log_x: bool, thresholding_variants: bool = False) -> None:
    """Lines of mean ± sd per method (and per thresholding when asked), panels per ``panel`` and dataset."""
    keys = ["dataset", x, "method", "thresholded"] + ([panel] if panel else [])
    summary = summarize(rows, keys)
    methods = _method_order(summary["method"].unique())
    variants = [False, True] if thresholding_variants else [False]
    labels = [method + (" + thresholding" if thresholded else "") for method in methods for thresholded in variants]
    style_sheet, context = _theme()
    with style_sheet, context:
        figure, cells = _grid(_panels_by(summary, panel), panel_title)
        handles: dict = {}
        for dataset, key, axis in cells:
            here = summary[summary["dataset"] == dataset]
            if panel:
                here = here[here[panel] == key]
            for method in methods:
                for thresholded in variants:
                    line = here[(here["method"] == method) & (here["thresholded"] == thresholded)]
                    if line.empty:
                        continue
                    label = method + (" + thresholding" if thresholded else "")
                    _line(axis, line, x, label, linestyle="--" if thresholded else "-", **_style(method, methods))
            if log_x:
                _log_ticks(axis, here[x])
            else:
                axis.set_xticks(sorted(here[x].unique()))
                axis.set_xticklabels([_show(v) for v in sorted(here[x].unique())])
            axis.set_xlabel(x_label)
            axis.set_ylabel(y_label)
            _collect(handles, axis)
        _finish(figure, path, f"{title}\n{_spread_text(rows, summary)}", _ordered(handles, labels), "method")


# --- the figures ------------------------------------------------------------------------------------

def _minority_title(dataset, key) -> str:
    return f"{dataset}: {_show(key)} minority classes"


@_takes_settings("fig3")
def plot_fig3(table: pd.DataFrame, path: str | Path, *, metric: str = "roc_auc", methods=None,
              iteration: int | None = None, datasets=None) -> None:
    """Figure 3: a metric against the imbalance ratio ρ (log x) for step imbalance, without thresholding.

    One line per method, one panel per number of minority classes, one row of panels per dataset.
    """
    rows = _at_checkpoint(_scores(table, "fig3", metric, imbalance="step", methods=methods, datasets=datasets),
                          "fig3", iteration)
    _lines_by_method(rows, path, x="rho", panel="n_minority", panel_title=_minority_title,
                     x_label="Imbalance ratio ρ", y_label=METRIC_LABELS.get(metric, metric), log_x=True,
                     title=f"Fig. 3: {METRIC_LABELS.get(metric, metric)} vs step imbalance ratio, test set, "
                           f"{_checkpoint_text(iteration)}")


@_takes_settings("fig4")
def plot_fig4(table: pd.DataFrame, path: str | Path, *, metric: str = "roc_auc", methods=None,
              iteration: int | None = None, datasets=None) -> None:
    """Figure 4: a metric against the number of minority classes for step imbalance, one panel per ρ."""
    rows = _at_checkpoint(_scores(table, "fig4", metric, imbalance="step", methods=methods, datasets=datasets),
                          "fig4", iteration)
    _lines_by_method(rows, path, x="n_minority", panel="rho",
                     panel_title=lambda dataset, rho: f"{dataset}: ρ = {_show(rho)}",
                     x_label="Number of minority classes", y_label=METRIC_LABELS.get(metric, metric), log_x=False,
                     title=f"Fig. 4: {METRIC_LABELS.get(metric, metric)} vs number of minority classes (step "
                           f"imbalance), test set, {_checkpoint_text(iteration)}")


@_takes_settings("fig5")
def plot_fig5(table: pd.DataFrame, path: str | Path, *, metric: str = "roc_auc", methods=None,
              iteration: int | None = None, datasets=None, imbalance: str = "linear") -> None:
    """Figure 5: a metric against ρ (log x) for linear imbalance (or ``imbalance``), one panel per dataset."""
    rows = _at_checkpoint(_scores(table, "fig5", metric, imbalance=imbalance, methods=methods, datasets=datasets),
                          "fig5", iteration)
    _lines_by_method(rows, path, x="rho", panel=None, panel_title=lambda dataset, key: dataset,
                     x_label="Imbalance ratio ρ", y_label=METRIC_LABELS.get(metric, metric), log_x=True,
                     title=f"Fig. 5: {METRIC_LABELS.get(metric, metric)} vs {imbalance} imbalance ratio, test set, "
                           f"{_checkpoint_text(iteration)}")


@_takes_settings("fig6")
def plot_fig6(table: pd.DataFrame, path: str | Path, *, metric: str = "accuracy", methods=None,
              iteration: int | None = None, datasets=None) -> None:
    """Figure 6: Figure 3 with accuracy, each method without (solid) and with thresholding (dashed)."""
    rows = _at_checkpoint(_scores(table, "fig6", metric, imbalance="step", methods=methods, datasets=datasets,
                                  thresholded=None), "fig6", iteration)
    _lines_by_method(rows, path, x="rho", panel="n_minority", panel_title=_minority_title,
                     x_label="Imbalance ratio ρ", y_label=METRIC_LABELS.get(metric, metric), log_x=True,
                     thresholding_variants=True,
                     title=f"Fig. 6: {METRIC_LABELS.get(metric, metric)} vs step imbalance ratio, without and with "
                           f"thresholding (dashed), test set, {_checkpoint_text(iteration)}")


@_takes_settings("fig7")
def plot_fig7(table: pd.DataFrame, path: str | Path, *, rho: float = 1000, metric: str = "roc_auc", methods=None,
              iteration: int | None = None, datasets=None) -> None:
    """Figure 7: partial over- and undersampling at one step-imbalance ratio ``rho``.

    x: the imbalance ratio left after sampling, log scale, reversed so that it runs from the original ρ
    (no sampling, left) to 1 (fully balanced, right); y: the metric. One line for oversampling, one for
    undersampling (one-phase runs with sampler over/under, whatever their method name); the runs with
    sampler none at that ρ are the baseline, drawn as a horizontal dotted line (± 1 sd band) and as the
    common first point (x = ρ, nothing sampled) of both lines. One panel per number of minority classes.
    """
    rows = _at_checkpoint(_scores(table, "fig7", metric, imbalance="step", methods=methods, datasets=datasets),
                          "fig7", iteration)
    rows = _keep(rows, "fig7", lambda r: np.isclose(r["rho"], rho), f"rho = {rho:g}", "rho")
    rows = _keep(rows, "fig7", lambda r: ~r["two_phase"], "two_phase = False", "two_phase")
    partial = _keep(rows, "fig7", lambda r: r["sampler"].isin(["over", "under"]),
                    f"sampler over or under at rho = {rho:g}", "sampler")
    baseline = summarize(rows[rows["sampler"] == "none"], ["dataset", "n_minority"])
    summary = summarize(partial, ["dataset", "n_minority", "sampler", "sampling_ratio"])
    labels = {"over": "oversampling", "under": "undersampling"}
    style_sheet, context = _theme()
    with style_sheet, context:
        figure, cells = _grid(_panels_by(summary, "n_minority"), _minority_title)
        handles: dict = {}
        for dataset, n_minority, axis in cells:
            here = summary[(summary["dataset"] == dataset) & (summary["n_minority"] == n_minority)]
            reference = baseline[(baseline["dataset"] == dataset) & (baseline["n_minority"] == n_minority)]
            start = reference.assign(sampling_ratio=float(rho))[["sampling_ratio", "mean", "sd", "n"]]
            for sampler in ("over", "under"):
                line = here[here["sampler"] == sampler].dropna(subset=["sampling_ratio"])
                if not line.empty:
                    if not np.isclose(line["sampling_ratio"], rho).any():
                        line = pd.concat([start, line[["sampling_ratio", "mean", "sd", "n"]]], ignore_index=True)
                    _line(axis, line, "sampling_ratio", labels[sampler], **_style(sampler, METHOD_ORDER))
            if not reference.empty:
                mean, sd = float(reference["mean"].iloc[0]), float(reference["sd"].iloc[0])
                color = _style("baseline", METHOD_ORDER)["color"]
                axis.axhline(mean, color=color, linestyle=":", linewidth=1.4,
                             label=f"baseline (no sampling, ρ = {rho:g})")
                axis.axhspan(mean - sd, mean + sd, color=color, alpha=0.10, linewidth=0)
                axis.errorbar([rho], [mean], yerr=[sd], color=color, marker="o", markersize=4.5, capsize=3)
            ticks = set(here["sampling_ratio"].dropna()) | {rho}
            _log_ticks(axis, ticks)
            axis.set_xlim(max(ticks) * 1.5, min(ticks) / 1.5)
            axis.set_xlabel("Imbalance ratio after sampling\n(axis reversed: ρ → 1 = balanced)")
            axis.set_ylabel(METRIC_LABELS.get(metric, metric))
            _collect(handles, axis)
        everything = pd.concat([summary, baseline]) if not baseline.empty else summary
        _finish(figure, path, f"Fig. 7: partial over- and undersampling at step imbalance ρ = {rho:g}, test set, "
                              f"{_checkpoint_text(iteration)}\n{_spread_text(rows, everything)}",
                handles, "sampling")


def default_fig8_profile(rows: pd.DataFrame) -> str:
    """The first (by μ, then name) step profile among those with the largest ρ."""
    step = rows[rows["imbalance"] == "step"]
    if step.empty:
        raise ScoreTableError("fig8: nothing to draw: no selected step-imbalance scores to choose a profile from; "
                              "name one with the setting profile")
    largest = step[np.isclose(step["rho"], step["rho"].max())]
    return largest.sort_values(["mu", "profile"])["profile"].iloc[0]


@_takes_settings("fig8")
def plot_fig8(table: pd.DataFrame, path: str | Path, *, profile: str | None = None,
              methods=("baseline", "over", "under"), metric: str = "accuracy", datasets=None) -> None:
    """Figure 8: train (solid) and test (dashed) accuracy over training iterations for one profile.

    One panel per method, one row per dataset; the training set is the one the run saw (after its
    sampling). The x axis is logarithmic when the checkpoints span more than a factor of 50.
    """
    rows = _scores(table, "fig8", metric, splits=("train", "test"), methods=methods, datasets=datasets)
    if profile is None:
        profile = default_fig8_profile(rows)
    rows = _keep(rows, "fig8", lambda r: r["profile"] == profile, f"profile {profile}", "profile")
    for split in ("train", "test"):
        _keep(rows, "fig8", lambda r: r["split"] == split, f"split {split} for profile {profile}", "split")
    summary = summarize(rows, ["dataset", "method", "split", "iteration"])
    iterations = summary["iteration"]
    positive = iterations[iterations > 0]
    log_x = len(positive) > 0 and positive.max() / positive.min() > 50
    style_sheet, context = _theme()
    with style_sheet, context:
        figure, cells = _grid(_panels_by(summary, "method", order=_method_order), lambda d, m: f"{d}: {m}")
        for dataset, method, axis in cells:
            here = summary[(summary["dataset"] == dataset) & (summary["method"] == method)]
            style = _style(method, summary["method"].unique())
            for split, linestyle in (("train", "-"), ("test", "--")):
                line = here[here["split"] == split]
                if not line.empty:
                    _line(axis, line, "iteration", split, style["color"], marker="", linestyle=linestyle)
            if log_x:
                if (iterations <= 0).any():
                    axis.set_xscale("symlog", linthresh=float(positive.min()))
                else:
                    axis.set_xscale("log")
            axis.set_xlabel("Iteration" + (" (log scale)" if log_x else ""))
            axis.set_ylabel(METRIC_LABELS.get(metric, metric))
        handles = {"train (as sampled)": Line2D([], [], color="black", linestyle="-"),
                   "test": Line2D([], [], color="black", linestyle="--")}
        _finish(figure, path, f"Fig. 8: train vs test {METRIC_LABELS.get(metric, metric).lower()}, profile {profile}"
                              f"\n{_spread_text(rows, summary)}", handles, "split")


# --- Table 4 ----------------------------------------------------------------------------------------

def _setting_label(imbalance: str, mu, rho) -> str:
    if imbalance == "step":
        return f"μ = {_show(mu)}, ρ = {_show(rho)}"
    return f"{imbalance}, ρ = {_show(rho)}"


def table4_frame(table: pd.DataFrame, metric: str | list[str] | None = None, methods=None,
                 iteration: int | None = None, datasets=None) -> pd.DataFrame:
    """Table 4 as a frame: one row per dataset, metric and imbalance setting; per method its mean, sd and n.

    Test split, no thresholding, the last checkpoint of each run (or ``iteration``); one block of rows
    per metric: ``metric`` first (default ROC AUC), then whichever of ROC AUC and accuracy it is not (a
    list of metrics gives exactly those blocks). The column ``select_on`` names the split a
    learning-rate search chose a row's runs on (empty when none was searched).
    """
    if metric is None or isinstance(metric, str):
        metrics = list(dict.fromkeys([metric or "roc_auc", "roc_auc", "accuracy"]))
    else:
        metrics = list(metric)
    blocks, chosen = [], []
    keys = ["dataset", "metric", "imbalance", "profile", "mu", "rho"]
    for name in metrics:
        rows = _at_checkpoint(_scores(table, "table4", name, methods=methods, datasets=datasets), "table4", iteration)
        blocks.append(summarize(rows, keys + ["method"]))
        chosen.append(rows.groupby(keys, dropna=False)["select_on"]
                      .agg(lambda splits: "/".join(sorted(set(splits) - {""}))).reset_index())
    summary = pd.concat(blocks, ignore_index=True)
    methods = _method_order(summary["method"].unique())
    frame = summary[keys].drop_duplicates().reset_index(drop=True)
    frame = frame.merge(pd.concat(chosen, ignore_index=True), on=keys, how="left")
    for method in methods:  # a merge, not a pivot: pandas pivots drop the empty μ of ramp profiles
        own = summary.loc[summary["method"] == method, keys + ["mean", "sd", "n"]]
        frame = frame.merge(own.rename(columns={s: f"{method}_{s}" for s in ("mean", "sd", "n")}), on=keys, how="left")
        frame[f"{method}_n"] = frame[f"{method}_n"].fillna(0).astype(int)
    frame.insert(2, "setting", [_setting_label(i, m, r) for i, m, r in zip(frame["imbalance"], frame["mu"],
                                                                           frame["rho"])])
    order = {"metric": {m: p for p, m in enumerate(metrics)},
             "imbalance": {k: p for p, k in enumerate(IMBALANCE_ORDER)}}
    frame = frame.assign(_metric=frame["metric"].map(order["metric"]),
                         _imbalance=frame["imbalance"].map(order["imbalance"]).fillna(len(IMBALANCE_ORDER)))
    frame = frame.sort_values(["dataset", "_metric", "_imbalance", "mu", "rho", "profile"], na_position="last")
    return frame.drop(columns=["_metric", "_imbalance"]).reset_index(drop=True)


def write_table4(table: pd.DataFrame, csv_path: str | Path, pdf_path: str | Path, metric=None, methods=None,
                 iteration: int | None = None, datasets=None) -> pd.DataFrame:
    """Table 4 (the ImageNet table): rows = imbalance settings (μ/ρ), columns = methods.

    The CSV holds, per (dataset, metric, setting), ``<method>_mean``, ``<method>_sd`` and ``<method>_n``
    (runs); the PDF renders each (dataset, metric) block as "mean ± sd (n)", the best mean of a row in
    bold. Returns the frame written to the CSV.
    """
    frame = table4_frame(table, metric=metric, methods=methods, iteration=iteration, datasets=datasets)
    methods = [column[: -len("_mean")] for column in frame.columns if column.endswith("_mean")]
    write_table(frame, csv_path)
    blocks = list(frame.groupby(["dataset", "metric"], sort=False))
    counts = frame[[f"{m}_n" for m in methods]].to_numpy()
    counts = counts[counts > 0]
    repeats = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"
    searched = sorted({split for value in frame["select_on"] for split in value.split("/") if split})
    selection = (f"\nlearning rate of searched runs selected on the {' / '.join(searched)} split"
                 + (" (optimistic)" if "test" in searched else "")) if searched else ""
    row_height, title_gap, top_gap = 0.22, 0.45, 0.35 + 0.15 * bool(searched)  # inches
    label_width = 0.08 * max(len(label) for label in frame["setting"]) + 0.3
    width = label_width + 1.9 * len(methods)
    height = top_gap + sum(title_gap + row_height * (len(block) + 1) for _, block in blocks)
    figure = plt.figure(figsize=(width, height))
    top = height - top_gap
    for (dataset, metric_name), block in blocks:
        table_height = row_height * (len(block) + 1)
        top -= title_gap
        axis = figure.add_axes((0, (top - table_height) / height, 1, table_height / height))
        top -= table_height
        axis.axis("off")
        cells, best = [], []
        for _, row in block.iterrows():
            cells.append([f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_sd']:.3f} ({row[f'{m}_n']})"
                          if row[f"{m}_n"] > 0 else "–" for m in methods])
            means = [row[f"{m}_mean"] if row[f"{m}_n"] > 0 else -np.inf for m in methods]
            best.append(int(np.argmax(means)))
        rendered = axis.table(cellText=cells, rowLabels=list(block["setting"]), colLabels=methods, cellLoc="center",
                              colWidths=[1.9 / width] * len(methods),
                              bbox=(label_width / width, 0, 1 - label_width / width, 1))
        rendered.auto_set_font_size(False)
        rendered.set_fontsize(8)
        for line, column in enumerate(best, start=1):
            rendered[line, column].get_text().set_fontweight("bold")
        axis.set_title(f"{dataset}: {METRIC_LABELS.get(metric_name, metric_name)}, mean ± sd (n runs)",
                       fontsize=9, loc="left")
    figure.suptitle(f"Table 4: test set, no thresholding, {_checkpoint_text(iteration)}, "
                    f"over {repeats} repeats per cell; best mean in bold{selection}", fontsize=9,
                    y=1 - 0.12 / height)
    with atomic_path(pdf_path) as temporary:
        figure.savefig(temporary, bbox_inches="tight", metadata=PDF_METADATA)
    plt.close(figure)
    return frame


@_takes_settings("table4")
def plot_table4(table: pd.DataFrame, path: str | Path, *, csv_path: str | Path | None = None, metric=None,
                methods=None, iteration: int | None = None, datasets=None) -> None:
    """Table 4 under the figures' signature: the PDF at ``path``, the CSV at ``csv_path`` (default beside it)."""
    write_table4(table, csv_path if csv_path is not None else Path(path).with_suffix(".csv"), path, metric=metric,
                 methods=methods, iteration=iteration, datasets=datasets)


# --- learning dynamics -------------------------------------------------------------------------------

GROUP_COLOURS = {"majority": "#1f77b4", "minority": "#d95f02", "all": "#4d4d4d"}


def _group_rows(table: pd.DataFrame, metric: str, profile: str | None, methods, datasets) -> pd.DataFrame:
    """Selected, non-thresholded group means (class -1, majority/minority) of one metric, one profile."""
    rows = normalize_scores(table, "dynamics")
    rows = _keep(rows, "dynamics", lambda r: r["selected"], "selected = True")
    if datasets:
        datasets = [datasets] if isinstance(datasets, str) else list(datasets)
        rows = _keep(rows, "dynamics", lambda r: r["dataset"].isin(datasets), f"dataset in {datasets}", "dataset")
    methods = _methods_wanted(methods)
    if methods:
        rows = _keep(rows, "dynamics", lambda r: r["method"].isin(methods), f"method in {methods}", "method")
    if profile is None:
        profile = default_fig8_profile(rows)
    rows = _keep(rows, "dynamics", lambda r: r["profile"] == profile, f"profile {profile}", "profile")
    rows = _keep(rows, "dynamics", lambda r: r["metric"] == metric, f"metric {metric}", "metric")
    return rows[(rows["class"] == -1) & ~rows["thresholded"]], profile


def _iteration_axis(axis, iterations) -> None:
    positive = iterations[iterations > 0]
    if len(positive) and positive.max() / positive.min() > 50:
        axis.set_xscale("log")
        axis.set_xlabel("Iteration (log scale)")
    else:
        axis.set_xlabel("Iteration")


def generalisation_gap(recall: pd.DataFrame) -> pd.DataFrame:
    """Per run, class group and checkpoint: train recall minus test recall (``value``), beside
    ``train`` and ``test``, from group-mean recall rows (class -1) of both splits; a run, group and
    checkpoint scored on one split only is left out."""
    run_keys = ["dataset", "profile", "method", "variant", "seed", "group", "iteration"]
    by_split = recall.pivot_table(index=run_keys, columns="split", values="value").dropna(subset=["train", "test"])
    by_split = by_split.reset_index()
    by_split["value"] = by_split["train"] - by_split["test"]
    return by_split


@_takes_settings("dynamics")
def plot_dynamics(table: pd.DataFrame, path: str | Path, *, profile: str | None = None, methods=None,
                  datasets=None) -> None:
    """Learning dynamics of one profile, two pages.

    Page 1: mean recall of the majority and of the minority classes over iterations, on the
    training set as the run saw it (solid) and on the test set (dashed), one panel per method: the
    minority classes are learnt late (underfitting) and then fit on the training set without
    generalising (memorisation). Page 2: the generalisation gap (train minus test) per class group,
    and the silhouette of the penultimate features on a fixed test subsample.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    recall, profile = _group_rows(table, "recall", profile, methods, datasets)
    recall = _keep(recall, "dynamics", lambda r: r["group"].isin(["majority", "minority"]),
                   "minority/majority group means", "group")
    for split in ("train", "test"):
        _keep(recall, "dynamics", lambda r: r["split"] == split, f"split {split}", "split")
    summary = summarize(recall, ["dataset", "method", "split", "group", "iteration"])
    gap = summarize(generalisation_gap(recall), ["dataset", "method", "group", "iteration"])
    silhouette = normalize_scores(table, "dynamics")
    silhouette = silhouette[(silhouette["metric"] == "silhouette") & (silhouette["profile"] == profile)
                            & silhouette["selected"] & silhouette["method"].isin(summary["method"].unique())
                            & silhouette["dataset"].isin(summary["dataset"].unique())]
    silhouette_summary = summarize(silhouette, ["dataset", "method", "group", "iteration"]) if len(silhouette) else None
    spread = _spread_text(recall, summary)
    style_sheet, context = _theme()
    with style_sheet, context, atomic_path(path) as temporary, PdfPages(temporary, metadata=PDF_METADATA) as pages:
        figure, cells = _grid(_panels_by(summary, "method", order=_method_order), lambda d, m: f"{d}: {m}")
        for dataset, method, axis in cells:
            here = summary[(summary["dataset"] == dataset) & (summary["method"] == method)]
            for (group, split), line in here.groupby(["group", "split"]):
                _line(axis, line, "iteration", f"{group}, {split}", GROUP_COLOURS[group], marker="",
                      linestyle="-" if split == "train" else "--")
            _iteration_axis(axis, summary["iteration"])
            axis.set_ylabel("Mean recall of the group")
        handles = {"majority classes": Line2D([], [], color=GROUP_COLOURS["majority"]),
                   "minority classes": Line2D([], [], color=GROUP_COLOURS["minority"]),
                   "train (as sampled)": Line2D([], [], color="black", linestyle="-"),
                   "test": Line2D([], [], color="black", linestyle="--")}
        _finish(figure, None, f"Learning dynamics, profile {profile}: majority vs minority classes, "
                f"train vs test\n{spread}", handles, pages=pages)
        panels = {dataset: ["generalisation gap"] + (["silhouette"] if silhouette_summary is not None else [])
                  for dataset in summary["dataset"].unique()}
        figure, cells = _grid(panels, lambda d, what: f"{d}: {what}", sharey=False)
        methods_present = _method_order(summary["method"].unique())
        for dataset, what, axis in cells:
            source = gap if what == "generalisation gap" else silhouette_summary
            here = source[source["dataset"] == dataset]
            for method in methods_present:
                for group, linestyle in (("majority", "-"), ("minority", "--"), ("all", ":")):
                    line = here[(here["method"] == method) & (here["group"] == group)]
                    if not line.empty and not (what == "silhouette" and group == "all"):
                        _line(axis, line, "iteration", f"{method}, {group}",
                              _style(method, methods_present)["color"], marker="", linestyle=linestyle)
            _iteration_axis(axis, here["iteration"])
            axis.set_ylabel("Train − test recall" if what == "generalisation gap" else "Silhouette (test subsample)")
        handles = {method: Line2D([], [], color=_style(method, methods_present)["color"]) for method in methods_present}
        handles.update({"majority classes": Line2D([], [], color="black", linestyle="-"),
                        "minority classes": Line2D([], [], color="black", linestyle="--")})
        _finish(figure, None, f"Generalisation gap and representation quality, profile {profile}\n{spread}",
                handles, pages=pages)


FIGURES = {"fig3": plot_fig3, "fig4": plot_fig4, "fig5": plot_fig5, "fig6": plot_fig6, "fig7": plot_fig7,
           "fig8": plot_fig8, "table4": plot_table4, "dynamics": plot_dynamics}
