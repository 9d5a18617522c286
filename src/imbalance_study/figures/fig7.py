"""Figure 7: partial over- and undersampling at one step-imbalance ratio, against the baseline.

Its CSV holds one row per drawn point: ``dataset``, ``n_minority`` (the panel), ``rho`` (the
original imbalance ratio), ``line`` (``oversampling``, ``undersampling``, or ``baseline`` for the
reference without sampling), ``sampler`` (over, under, none), ``imbalance_ratio_after_sampling``
(the x value; ``rho`` for the baseline, whose point also starts both sampling lines when they have
none of their own at ``rho``), ``metric``, and ``mean``, ``sd`` and ``n`` (runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .registry import _takes_settings
from .style import (_checkpoint_text, _collect, _finish, _grid, _line, _log_ticks, _metric_label, _minority_title,
                    _panels_by, _spread_text, _style, _theme)
from .table import METHOD_ORDER, _at_checkpoint, _keep, _scores, summarize, write_plotted

LINES = {"over": "oversampling", "under": "undersampling", "none": "baseline"}
COLUMNS = ["dataset", "n_minority", "rho", "line", "sampler", "imbalance_ratio_after_sampling", "metric", "mean",
           "sd", "n"]


@_takes_settings("fig7")
def plot_fig7(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, rho: float, metric: str,
              methods=None, iteration: int | None = None, datasets=None) -> None:
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
    style_sheet, context = _theme()
    plotted = []
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
                    plotted.append(line)
                    if not np.isclose(line["sampling_ratio"], rho).any():
                        line = pd.concat([start, line[["sampling_ratio", "mean", "sd", "n"]]], ignore_index=True)
                    _line(axis, line, "sampling_ratio", LINES[sampler], **_style(sampler, METHOD_ORDER))
            if not reference.empty:
                plotted.append(reference.assign(sampler="none", sampling_ratio=float(rho)))
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
            axis.set_ylabel(_metric_label(metric))
            _collect(handles, axis)
        everything = pd.concat([summary, baseline]) if not baseline.empty else summary
        _finish(figure, pdf_path, f"Fig. 7: partial over- and undersampling at step imbalance ρ = {rho:g}, test set, "
                                  f"{_checkpoint_text(iteration)}\n{_spread_text(rows, everything)}",
                handles, "sampling")
    drawn = pd.concat(plotted, ignore_index=True) if plotted else summary.iloc[:0]
    drawn = drawn.assign(rho=float(rho), line=drawn["sampler"].map(LINES), metric=metric,
                         imbalance_ratio_after_sampling=drawn["sampling_ratio"])
    write_plotted(drawn, csv_path, COLUMNS, order=["dataset", "n_minority", "line", "imbalance_ratio_after_sampling"])
