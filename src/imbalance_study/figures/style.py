"""How the figures look: seaborn theme, one row of panels per dataset, lines of mean ± sd, legends,
titles, and the PDF metadata naming what made a figure.

Every figure module draws through these helpers so that a method keeps its colour and marker in
every figure of a study, and ``_finish`` saves a figure atomically with ``PDF_METADATA``.
"""

from __future__ import annotations

import json
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from .table import METHOD_ORDER, _method_order, _show  # noqa: E402

METRIC_LABELS = {"roc_auc": "ROC AUC", "accuracy": "Accuracy", "recall": "Recall", "loss": "Loss",
                 "balanced_accuracy": "Balanced accuracy", "macro_f1": "Macro-F1", "g_mean": "G-mean of recalls"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

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


# --- title text -------------------------------------------------------------------------------------

def _repeats(*summaries: pd.DataFrame) -> str:
    counts = pd.concat([summary["n"] for summary in summaries])
    low, high = int(counts.min()), int(counts.max())
    return f"{low} repeat{'s' if high > 1 else ''}" if low == high else f"{low}–{high} repeats"


def _minority_title(dataset, key) -> str:
    return f"{dataset}: {_show(key)} minority classes"


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
