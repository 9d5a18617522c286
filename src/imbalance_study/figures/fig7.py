"""Figure 7: partial over- and undersampling at one step-imbalance ratio, against the baseline.

Two layouts (``figures.fig7.layout``): ``paper``, as the paper draws it, two panels per dataset,
(a) oversampling and (b) undersampling, with one line per number of minority classes; and
``per_minority``, one panel per number of minority classes with one line per sampler.

Its CSV, the same whatever the layout, holds one row per drawn point: ``dataset``, ``n_minority``,
``rho`` (the original imbalance ratio), ``line`` (``oversampling``, ``undersampling``, or ``baseline``
for the reference without sampling), ``sampler`` (over, under, none), ``imbalance_ratio_after_sampling``
(the x value; ``rho`` for the baseline, whose point also starts both sampling lines when they have
none of their own at ``rho``), ``metric``, and ``mean``, ``sd`` and ``n`` (runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from .registry import FigureSettingsError, _takes_settings
from .style import (MARKERS, _checkpoint_text, _collect, _finish, _grid, _line, _log_ticks, _metric_label,
                    _minority_title, _ordered, _panels_by, _spread_text, _style, _theme)
from .table import METHOD_ORDER, _at_checkpoint, _keep, _scores, _show, summarize, write_plotted

LINES = {"over": "oversampling", "under": "undersampling", "none": "baseline"}
COLUMNS = ["dataset", "n_minority", "rho", "line", "sampler", "imbalance_ratio_after_sampling", "metric", "mean",
           "sd", "n"]
LAYOUTS = ("paper", "per_minority")
# The paper layout's panels, in the paper's order and with its letters.
PANELS = {"over": "(a) Oversampling", "under": "(b) Undersampling"}
X_LABEL = "Imbalance ratio after sampling\n(axis reversed: ρ → 1 = balanced)"
POINT = ["sampling_ratio", "mean", "sd", "n"]


@_takes_settings("fig7")
def plot_fig7(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, rho: float, metric: str,
              layout: str, methods=None, iteration: int | None = None, datasets=None) -> None:
    """Figure 7: partial over- and undersampling at one step-imbalance ratio ``rho``.

    x: the imbalance ratio left after sampling, log scale, reversed so that it runs from the original ρ
    (no sampling, left) to 1 (fully balanced, right); y: the metric. The sampling lines are the one-phase
    runs with sampler over/under, whatever their method name; the runs with sampler none at that ρ are
    the baseline, the common first point (x = ρ, nothing sampled) of the lines of its number of minority
    classes, also drawn as a horizontal dotted line.

    ``layout`` ``paper``: two panels per dataset, (a) oversampling and (b) undersampling, one line per
    number of minority classes (a colour each, its baseline's dotted line in that colour).
    ``per_minority``: one panel per number of minority classes, one line for oversampling and one for
    undersampling, the baseline's dotted line with a ± 1 sd band. One row of panels per dataset in both.
    """
    if layout not in LAYOUTS:
        raise FigureSettingsError(f"fig7: layout {layout!r} is not one of {list(LAYOUTS)}")
    rows = _at_checkpoint(_scores(table, "fig7", metric, imbalance="step", methods=methods, datasets=datasets),
                          "fig7", iteration)
    rows = _keep(rows, "fig7", lambda r: np.isclose(r["rho"], rho), f"rho = {rho:g}", "rho")
    rows = _keep(rows, "fig7", lambda r: ~r["two_phase"], "two_phase = False", "two_phase")
    partial = _keep(rows, "fig7", lambda r: r["sampler"].isin(["over", "under"]),
                    f"sampler over or under at rho = {rho:g}", "sampler")
    baseline = summarize(rows[rows["sampler"] == "none"], ["dataset", "n_minority"])
    summary = summarize(partial, ["dataset", "n_minority", "sampler", "sampling_ratio"])
    lines, references, plotted = _points(summary, baseline, rho)
    style_sheet, context = _theme()
    with style_sheet, context:
        draw = _draw_paper if layout == "paper" else _draw_per_minority
        figure, handles, legend_title = draw(summary, lines, references, rho, metric)
        everything = pd.concat([summary, baseline]) if not baseline.empty else summary
        _finish(figure, pdf_path, f"Fig. 7: partial over- and undersampling at step imbalance ρ = {rho:g}, test set, "
                                  f"{_checkpoint_text(iteration)}\n{_spread_text(rows, everything)}",
                handles, legend_title)
    drawn = pd.concat(plotted, ignore_index=True) if plotted else summary.iloc[:0]
    drawn = drawn.assign(rho=float(rho), line=drawn["sampler"].map(LINES), metric=metric,
                         imbalance_ratio_after_sampling=drawn["sampling_ratio"])
    write_plotted(drawn, csv_path, COLUMNS, order=["dataset", "n_minority", "line", "imbalance_ratio_after_sampling"])


def _points(summary: pd.DataFrame, baseline: pd.DataFrame, rho: float):
    """What is drawn, whatever the layout: ``lines`` {(dataset, n_minority, sampler): its points, the
    baseline's first when the line has none of its own at ρ}, ``references`` {(dataset, n_minority): the
    baseline's one row}, and ``plotted``, the frames of the CSV's rows (each point once)."""
    lines, references, plotted = {}, {}, []
    for dataset, minorities in _panels_by(summary, "n_minority").items():
        for n_minority in minorities:
            here = summary[(summary["dataset"] == dataset) & (summary["n_minority"] == n_minority)]
            reference = baseline[(baseline["dataset"] == dataset) & (baseline["n_minority"] == n_minority)]
            start = reference.assign(sampling_ratio=float(rho))[POINT]
            for sampler in ("over", "under"):
                line = here[here["sampler"] == sampler].dropna(subset=["sampling_ratio"])
                if line.empty:
                    continue
                plotted.append(line)
                if not np.isclose(line["sampling_ratio"], rho).any():
                    line = pd.concat([start, line[POINT]], ignore_index=True)
                lines[(dataset, n_minority, sampler)] = line[POINT].sort_values("sampling_ratio").reset_index(drop=True)
            if not reference.empty:
                plotted.append(reference.assign(sampler="none", sampling_ratio=float(rho)))
                references[(dataset, n_minority)] = reference.iloc[0]
    return lines, references, plotted


def _reversed_log_x(axis, ticks, rho: float) -> None:
    ticks = set(ticks) | {float(rho)}
    _log_ticks(axis, ticks)
    axis.set_xlim(max(ticks) * 1.5, min(ticks) / 1.5)
    axis.set_xlabel(X_LABEL)


def _draw_paper(summary, lines, references, rho, metric):
    """(a) oversampling and (b) undersampling side by side, one row per dataset; a line per number of
    minority classes, its baseline a dotted horizontal line of the same colour."""
    minorities = sorted(summary["n_minority"].dropna().unique())
    palette = sns.color_palette("colorblind", 10)
    looks = {k: {"color": palette[i % len(palette)], "marker": MARKERS[i % len(MARKERS)]}
             for i, k in enumerate(minorities)}
    panels = {dataset: [sampler for sampler in PANELS if any(key[0] == dataset and key[2] == sampler
                                                            for key in lines)]
              for dataset in sorted(summary["dataset"].unique())}
    figure, cells = _grid(panels, lambda dataset, sampler: f"{PANELS[sampler]} — {dataset}")
    handles: dict = {}
    for dataset, sampler, axis in cells:
        ticks = set()
        for k in minorities:
            line = lines.get((dataset, k, sampler))
            if line is None:
                continue
            ticks |= set(line["sampling_ratio"])
            _line(axis, line, "sampling_ratio", f"{_show(k)} minority classes", **looks[k])
            if (dataset, k) in references:
                axis.axhline(float(references[(dataset, k)]["mean"]), color=looks[k]["color"], linestyle=":",
                             linewidth=1.1, alpha=0.9, zorder=1)
        _reversed_log_x(axis, ticks, rho)
        axis.set_ylabel(_metric_label(metric))
        _collect(handles, axis)
    handles = _ordered(handles, [f"{_show(k)} minority classes" for k in minorities])
    if references:
        handles[f"baseline (no sampling, ρ = {rho:g}), dotted"] = Line2D(
            [], [], color="0.35", linestyle=":", linewidth=1.1)
    return figure, handles, None


def _draw_per_minority(summary, lines, references, rho, metric):
    """One panel per number of minority classes, one line per sampler, the baseline dotted (± 1 sd band)."""
    figure, cells = _grid(_panels_by(summary, "n_minority"), _minority_title)
    handles: dict = {}
    for dataset, n_minority, axis in cells:
        ticks = set(summary.loc[(summary["dataset"] == dataset) & (summary["n_minority"] == n_minority),
                                "sampling_ratio"].dropna())
        for sampler in ("over", "under"):
            line = lines.get((dataset, n_minority, sampler))
            if line is not None:
                _line(axis, line, "sampling_ratio", LINES[sampler], **_style(sampler, METHOD_ORDER))
        reference = references.get((dataset, n_minority))
        if reference is not None:
            mean, sd = float(reference["mean"]), float(reference["sd"])
            color = _style("baseline", METHOD_ORDER)["color"]
            axis.axhline(mean, color=color, linestyle=":", linewidth=1.4, label=f"baseline (no sampling, ρ = {rho:g})")
            axis.axhspan(mean - sd, mean + sd, color=color, alpha=0.10, linewidth=0)
            axis.errorbar([rho], [mean], yerr=[sd], color=color, marker="o", markersize=4.5, capsize=3)
        _reversed_log_x(axis, ticks, rho)
        axis.set_ylabel(_metric_label(metric))
        _collect(handles, axis)
    return figure, handles, "sampling"
