"""Figure 8: train and test scores over the training iterations, for one profile, per method.

Its CSV holds one row per drawn point: ``dataset``, ``profile``, ``method``, ``split`` (train: the
training set as the run saw it, after its sampling; test), ``iteration``, ``metric``, and ``mean``,
``sd`` and ``n`` (runs) of the metric.

When early stopping stopped some of the drawn runs (``stopped_at`` in the score table), each panel
marks its runs' median stop with a dotted vertical line (``style._mark_early_stop``); the CSV is the same.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from .registry import _takes_settings
from .style import (_early_stops, _finish, _iteration_axis, _line, _log_iterations, _mark_early_stop, _metric_label,
                    _panels_by, _profile_text, _spread_text, _style, _theme, _wrapped_grid)
from .table import _keep, _method_order, _scores, summarize, write_plotted

SPLITS = ("train", "test")
COLUMNS = ["dataset", "profile", "method", "split", "iteration", "metric", "mean", "sd", "n"]


@_takes_settings("fig8")
def plot_fig8(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str, profile: str,
              methods=None, datasets=None) -> None:
    """Figure 8: train (solid) and test (dashed) scores over training iterations for one profile.

    One panel per method, a dataset's panels in rows of at most ``style.PANEL_COLUMNS`` (one y scale
    per dataset); the training set is the one the run saw (after its sampling). The x axis is
    logarithmic when the checkpoints span more than a factor of 50. A dotted vertical line marks the
    median iteration where the panel's runs stopped early, when some did.
    """
    rows = _scores(table, "fig8", metric, splits=SPLITS, methods=methods, datasets=datasets)
    rows = _keep(rows, "fig8", lambda r: r["profile"] == profile, f"profile {profile}", "profile")
    for split in SPLITS:
        _keep(rows, "fig8", lambda r: r["split"] == split, f"split {split} for profile {profile}", "split")
    summary = summarize(rows, ["dataset", "method", "split", "iteration"])
    log_x = _log_iterations(summary["iteration"])
    stops = _early_stops(rows)
    style_sheet, context = _theme()
    plotted = []
    with style_sheet, context:
        figure, cells = _wrapped_grid(_panels_by(summary, "method", order=_method_order), lambda d, m: f"{d}: {m}")
        handles = {"train (as sampled)": Line2D([], [], color="black", linestyle="-"),
                   "test": Line2D([], [], color="black", linestyle="--")}
        for dataset, method, axis in cells:
            here = summary[(summary["dataset"] == dataset) & (summary["method"] == method)]
            style = _style(method, summary["method"].unique())
            for split, linestyle in zip(SPLITS, ("-", "--")):
                line = here[here["split"] == split]
                if not line.empty:
                    plotted.append(line)
                    _line(axis, line, "iteration", split, style["color"], marker="", linestyle=linestyle)
            _mark_early_stop(axis, stops, dataset, method, handles)
            _iteration_axis(axis, here["iteration"], log_x)
            axis.set_ylabel(_metric_label(metric))
        title = (f"Fig. 8: {_metric_label(metric)} over training, train vs test, profile "
                 f"{_profile_text(profile, rows)}\n{_spread_text(rows, summary)}")
        _finish(figure, pdf_path, title, handles, "split" if stops is None else None)  # (an early stop is no split)
    drawn = pd.concat(plotted, ignore_index=True).assign(profile=profile, metric=metric)
    write_plotted(drawn, csv_path, COLUMNS, order=["dataset", "method", "split", "iteration"],
                  ranks={"split": SPLITS})
