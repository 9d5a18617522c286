"""How the figures look: seaborn theme, one row of panels per dataset (or rows of at most
``PANEL_COLUMNS``), lines of mean ± sd, iteration axes, the early-stopping mark, legends, titles,
and the PDF metadata naming what made a figure.

Every figure module draws through these helpers so that a method keeps its colour and marker in
every figure of a study (the paper's methods always the same colours; every method of a figure a
colour of its own), and ``_finish`` saves a figure atomically with ``PDF_METADATA``.
"""

from __future__ import annotations

import json
import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from .table import METHOD_ORDER, RUN_COLUMNS, _method_order, _show  # noqa: E402

METRIC_LABELS = {"roc_auc": "ROC AUC", "accuracy": "Accuracy", "recall": "Recall", "loss": "Loss",
                 "balanced_accuracy": "Balanced accuracy", "macro_f1": "Macro-F1", "g_mean": "G-mean of recalls"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
# Method colours (``_style``): the paper's methods (METHOD_ORDER) the first five of seaborn's colorblind
# palette, always; the other methods of a figure the next ones, in the order ``_method_order`` gives
# them (dark and mid tones first, chosen to stay apart from the five and from each other; the pale
# ones last). Up to ten other methods get colours of their own; beyond, colours repeat with other markers.
OTHER_COLOURS = ("#882255", "#332288", "#56b4e9", "#999933", "#e7298a", "#949494", "#8c510a", "#44aa99",
                 "#ece133", "#fbafe4")  # wine, indigo, sky blue, olive, magenta, grey, brown, teal, yellow, pale pink
PALETTE = tuple(sns.color_palette("colorblind", len(METHOD_ORDER))) + tuple(to_rgb(c) for c in OTHER_COLOURS)
PANEL_COLUMNS = 5  # ``_wrapped_grid``: a dataset's panels in rows of at most this many
# Early stopping (``stopped_at`` in the score table): a dotted vertical line per panel.
EARLY_STOP_LABEL = "early stop (median over runs)"
EARLY_STOP_GID = "early_stop"  # the line's gid, for a test (or a reader of the figure) to find it
EARLY_STOP_STYLE = {"color": "0.25", "linestyle": ":", "linewidth": 1.1}

# What made a figure, written into its PDF's metadata (Subject); set by the figure rule's script.
PDF_METADATA: dict = {}


def provenance_metadata(settings: dict, software: dict) -> dict:
    """PDF metadata naming what made a figure: its resolved settings (as JSON) and the software
    versions ({package: version})."""
    versions = ", ".join(f"{package} {number}" for package, number in software.items())
    return {"Subject": f"settings {json.dumps(settings, sort_keys=True, default=str)}; {versions}",
            "Creator": "imbalance-study"}


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _theme():
    return sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1)


def _style(method: str, every_method) -> dict:
    """A method's colour and marker among ``every_method`` (the methods a figure draws).

    The paper's methods (``METHOD_ORDER``) keep the first colours of ``PALETTE`` whatever else is
    drawn; the others take the next ones in ``_method_order``, so every method of a figure has its own
    colour up to ``len(PALETTE)`` methods, and beyond that the colours repeat with another marker.
    """
    order = _method_order(set(every_method) | set(METHOD_ORDER) | {method})
    position = order.index(method)
    return {"color": PALETTE[position % len(PALETTE)], "marker": MARKERS[position % len(MARKERS)]}


def _colours_repeat(every_method) -> bool:
    """Whether some methods of ``every_method`` share a colour (more than ``PALETTE`` holds): a figure
    drawing lines without markers then draws ``_style``'s markers too."""
    return len(set(every_method) | set(METHOD_ORDER)) > len(PALETTE)


def _line(axis, summary: pd.DataFrame, x: str, label: str, color, marker: str, linestyle: str = "-") -> None:
    summary = summary.sort_values(x)
    axis.plot(summary[x], summary["mean"], color=color, marker=marker, linestyle=linestyle, label=label,
              markersize=4.5, linewidth=1.4)
    axis.fill_between(summary[x], summary["mean"] - summary["sd"], summary["mean"] + summary["sd"],
                      color=color, alpha=0.15, linewidth=0)


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


def _wrapped_grid(panels: dict, title, columns: int = PANEL_COLUMNS, width: float = 3.4, height: float = 2.8,
                  sharey: bool | str = "dataset"):
    """Like ``_grid``, but a dataset's panels wrap into rows of at most ``columns`` (ten methods in one
    row made a page too wide to read), each dataset starting a new row. ``sharey``: ``"dataset"``,
    one y scale per dataset (``_grid``'s rows); True, one for every panel; False, none."""
    n_columns = min(columns, max(len(keys) for keys in panels.values()))
    rows_of = {dataset: math.ceil(len(keys) / n_columns) for dataset, keys in panels.items()}
    n_rows = sum(rows_of.values())
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(width * n_columns + 1.0, height * n_rows + 1.4),
                                squeeze=False, sharey=sharey is True, layout="constrained")
    cells, first = [], 0
    for dataset, keys in panels.items():
        shared = None
        for position in range(rows_of[dataset] * n_columns):
            axis = axes[first + position // n_columns, position % n_columns]
            if position >= len(keys):
                axis.set_visible(False)
                continue
            if sharey == "dataset":
                if shared is None:
                    shared = axis
                else:
                    axis.sharey(shared)
            axis.set_title(title(dataset, keys[position]), fontsize="medium")
            axis.tick_params(labelleft=True)
            cells.append((dataset, keys[position], axis))
        first += rows_of[dataset]
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


def _log_iterations(iterations) -> bool:
    """Whether an axis of these iterations is logarithmic: when the positive ones span more than a
    factor of 50. Decided over a figure's checkpoints, so that its panels agree."""
    iterations = pd.Series(iterations, dtype=float)
    positive = iterations[iterations > 0]
    return len(positive) > 0 and positive.max() / positive.min() > 50


def _iteration_label(value, _position=None) -> str:
    """A tick of an iteration axis as a plain number, thousands as k and millions as M from 10 000."""
    if value >= 1e6 and value % 1e5 == 0:
        return f"{value / 1e6:g}M"
    if value >= 1e4 and value % 100 == 0:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _iteration_axis(axis, iterations, log_x: bool | None = None) -> None:
    """An x axis of training iterations: linear, or logarithmic when ``log_x`` (by default
    ``_log_iterations(iterations)``; pass the figure's decision so that its panels agree), symlog
    (linear up to the first positive checkpoint) when a checkpoint is at 0.

    On a log axis only major ticks are labelled: over less than two decades matplotlib labels the
    minor ticks too (2×10⁰3×10⁰4×10⁰6×10⁰), and their labels run together in a narrow panel. A panel
    whose ``iterations`` (its own) span less than 2.5 decades, which would show one or two powers of
    ten at most, gets its major ticks at 1, 2 and 5 times them (under 1.5 decades) or at 1 and 3,
    labelled as plain numbers.
    """
    iterations = pd.Series(iterations, dtype=float).dropna()
    if log_x is None:
        log_x = _log_iterations(iterations)
    if not log_x:
        axis.set_xlabel("Iteration")
        return
    positive = iterations[iterations > 0]
    at_zero = bool((iterations <= 0).any())
    if at_zero and len(positive):
        axis.set_xscale("symlog", linthresh=float(positive.min()))
    else:
        axis.set_xscale("log")
    axis.xaxis.set_minor_formatter(NullFormatter())
    if len(positive) and not at_zero:
        decades = math.log10(positive.max() / positive.min())
        subs = (1.0, 2.0, 5.0) if decades < 1.5 else (1.0, 3.0) if decades < 2.5 else None
        if subs:
            axis.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
            axis.xaxis.set_major_formatter(FuncFormatter(_iteration_label))
    axis.set_xlabel("Iteration (log scale)")


def _early_stops(rows: pd.DataFrame):
    """Per (dataset, method), the median ``stopped_at`` over the runs of ``rows`` that stopped early
    (a Series); None when none of them did, early stopping was off, or the table predates the column."""
    if "stopped_at" not in rows.columns:
        return None
    runs = rows.drop_duplicates(list(RUN_COLUMNS))
    runs = runs.assign(stopped_at=pd.to_numeric(runs["stopped_at"], errors="coerce")).dropna(subset=["stopped_at"])
    if runs.empty:
        return None
    return runs.groupby(["dataset", "method"])["stopped_at"].median()


def _mark_early_stop(axis, stops, dataset, method, handles: dict) -> None:
    """A thin dotted vertical line at the panel's median early stop (``_early_stops``), and its
    legend entry in ``handles``; nothing when the panel's runs never stopped."""
    if stops is None or (dataset, method) not in stops.index:
        return
    axis.axvline(float(stops[(dataset, method)]), zorder=1.5, gid=EARLY_STOP_GID, **EARLY_STOP_STYLE)
    handles[EARLY_STOP_LABEL] = Line2D([], [], **EARLY_STOP_STYLE)


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


# --- title text -------------------------------------------------------------------------------------

def _repeats(*summaries: pd.DataFrame) -> str:
    counts = pd.concat([summary["n"] for summary in summaries])
    low, high = int(counts.min()), int(counts.max())
    return f"{low} repeat{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repeats"


def _minority_title(dataset, key) -> str:
    return f"{dataset}: {_show(key)} minority classes"


def _profile_text(profile: str, rows: pd.DataFrame) -> str:
    """The profile as the titles name it: the natural profile with its ratio ρ (largest over smallest
    class of the training part, per dataset), which its name does not carry."""
    if profile != "natural" or "rho" not in rows:
        return profile
    ratios = rows.drop_duplicates("dataset").set_index("dataset")["rho"].dropna()
    if ratios.empty:
        return profile
    if ratios.nunique() == 1:
        return f"{profile} (ρ = {ratios.iloc[0]:.3g})"
    return f"{profile} (ρ: " + ", ".join(f"{dataset} {rho:.3g}" for dataset, rho in ratios.items()) + ")"


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


def _diverged_text(diverged: list[str]) -> str:
    """The runs left out for diverging (``rows.attrs["diverged"]``), for a title; empty when none."""
    if not diverged:
        return ""
    return (f"{len(diverged)} run{'s' if len(diverged) > 1 else ''} diverged and left out: "
            f"{', '.join(diverged[:3])}{' ...' if len(diverged) > 3 else ''}")


def _spread_text(rows: pd.DataFrame, *summaries: pd.DataFrame) -> str:
    left_out = _diverged_text(rows.attrs.get("diverged", []))
    return f"(mean ± 1 sd over {_repeats(*summaries)}{_selection_text(rows)}{'; ' + left_out if left_out else ''})"


# --- the paper's published numbers, drawn beside the study's -----------------------------------------

PAPER_LABEL = "paper"  # the legend's (and Table 4's row) label of a published number
PAPER_GREY = "0.4"  # Table 4's paper rows: grey italic text
PAPER_MARKER = {"marker": "*", "markersize": 11, "markerfacecolor": "none", "markeredgewidth": 1.2,
                "linestyle": "none"}


def _paper_marks(axis, xs, values, color) -> None:
    """The paper's values at ``xs`` as hollow stars of a method's colour (one per published run)."""
    axis.plot(xs, values, color=color, markeredgecolor=color, zorder=4, **PAPER_MARKER)


def _paper_handle():
    """The legend's entry for the paper's marks: a hollow grey star labelled ``PAPER_LABEL``."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=PAPER_GREY, markeredgecolor=PAPER_GREY, **PAPER_MARKER)
