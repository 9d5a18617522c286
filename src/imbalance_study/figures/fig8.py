"""Figure 8: train and test scores over the training iterations, for one profile, per method.

Its CSV holds one row per drawn point: ``dataset``, ``profile``, ``method``, ``split`` (train: the
training set as the run saw it, after its sampling; test), ``iteration``, ``metric``, and ``mean``,
``sd`` and ``n`` (runs) of the metric.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from .registry import _takes_settings
from .style import _finish, _grid, _line, _metric_label, _panels_by, _spread_text, _style, _theme
from .table import _keep, _method_order, _scores, summarize, write_plotted

SPLITS = ("train", "test")
COLUMNS = ["dataset", "profile", "method", "split", "iteration", "metric", "mean", "sd", "n"]


@_takes_settings("fig8")
def plot_fig8(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str, profile: str,
              methods=None, datasets=None) -> None:
    """Figure 8: train (solid) and test (dashed) scores over training iterations for one profile.

    One panel per method, one row per dataset; the training set is the one the run saw (after its
    sampling). The x axis is logarithmic when the checkpoints span more than a factor of 50.
    """
    rows = _scores(table, "fig8", metric, splits=SPLITS, methods=methods, datasets=datasets)
    rows = _keep(rows, "fig8", lambda r: r["profile"] == profile, f"profile {profile}", "profile")
    for split in SPLITS:
        _keep(rows, "fig8", lambda r: r["split"] == split, f"split {split} for profile {profile}", "split")
    summary = summarize(rows, ["dataset", "method", "split", "iteration"])
    iterations = summary["iteration"]
    positive = iterations[iterations > 0]
    log_x = len(positive) > 0 and positive.max() / positive.min() > 50
    style_sheet, context = _theme()
    plotted = []
    with style_sheet, context:
        figure, cells = _grid(_panels_by(summary, "method", order=_method_order), lambda d, m: f"{d}: {m}")
        for dataset, method, axis in cells:
            here = summary[(summary["dataset"] == dataset) & (summary["method"] == method)]
            style = _style(method, summary["method"].unique())
            for split, linestyle in zip(SPLITS, ("-", "--")):
                line = here[here["split"] == split]
                if not line.empty:
                    plotted.append(line)
                    _line(axis, line, "iteration", split, style["color"], marker="", linestyle=linestyle)
            if log_x:
                if (iterations <= 0).any():
                    axis.set_xscale("symlog", linthresh=float(positive.min()))
                else:
                    axis.set_xscale("log")
            axis.set_xlabel("Iteration" + (" (log scale)" if log_x else ""))
            axis.set_ylabel(_metric_label(metric))
        handles = {"train (as sampled)": Line2D([], [], color="black", linestyle="-"),
                   "test": Line2D([], [], color="black", linestyle="--")}
        _finish(figure, pdf_path, f"Fig. 8: train vs test {_metric_label(metric).lower()}, profile {profile}"
                                  f"\n{_spread_text(rows, summary)}", handles, "split")
    drawn = pd.concat(plotted, ignore_index=True).assign(profile=profile, metric=metric)
    write_plotted(drawn, csv_path, COLUMNS, order=["dataset", "method", "split", "iteration"],
                  ranks={"split": SPLITS})
