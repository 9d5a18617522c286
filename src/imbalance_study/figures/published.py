"""The figure ``published``: the study's top-1 error beside the published numbers it should reproduce.

One panel per (dataset, profile); x: the study's methods (and "<method> + post-hoc LA" where a
source publishes post-hoc logit adjustment of that method); y: the top-1 error in percent (100 -
accuracy) on the balanced test set at each run's last checkpoint (or ``iteration``). Each seed is a
small dot, the mean over seeds a larger marker with a ± 1 sd bar, both of the method's colour; the
published numbers of the set (``imbalance_study.paper.top1_errors``, where ``paper`` says that a
dataset repeats an experiment with published top-1 errors) are hollow stars just right of the
method they repeat, one colour per source, labelled with the source in the legend and with their
value beside them. A glance says whether the run lands on the published numbers.

Post-hoc logit adjustment with tau 1 (Menon et al. 2021) is the outputs divided by the class priors
of the imbalanced training set: the score table's thresholded rows (of tau 1 where the table has a
``tau`` column). It is drawn only for the methods a source publishes it for.

The CSV has one row per drawn point: ``dataset``, ``profile``, ``imbalance``, ``mu``, ``rho``,
``method``, ``scoring`` (plain or posthoc), ``each_seed`` (``seed: error`` of every run, as drawn),
``published_<source>`` for each source with a number in the figure (the published error as a
fraction, empty where that source has none), and ``mean``, ``sd`` and ``n`` (runs) of the top-1
error as a fraction, as ``summarize`` computes them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .. import paper as published
from .registry import _takes_settings
from .style import PAPER_MARKER, _checkpoint_text, _finish, _spread_text, _style, _theme
from .table import IMBALANCE_ORDER, _at_checkpoint, _method_order, _scores, _show, summarize, write_plotted

SOURCE_COLOURS = {"buda2018": "0.35", "cao2019": "black", "menon2021": "#b2182b"}
POSTHOC_TAU = 1.0
SEEDS_AT, MEAN_AT, STARS_AT = 0.28, 0.1, 0.2  # offsets from a method's tick: seeds and mean left, stars right
POINT = ["dataset", "profile", "imbalance", "mu", "rho", "method", "scoring"]


def _published_pairs(frame: pd.DataFrame, paper: dict | None) -> dict:
    """(dataset, profile) -> the published numbers of that set (``paper.Published``, fractions)."""
    found = {}
    for point in frame.drop_duplicates(["dataset", "profile"]).itertuples(index=False):
        numbers = published.top1_errors((paper or {}).get(point.dataset), point.imbalance, point.mu, point.rho)
        if numbers:
            found[point.dataset, point.profile] = numbers
    return found


def _errors(rows: pd.DataFrame, numbers: dict) -> pd.DataFrame:
    """Top-1 errors of the plain outputs of every method, and of the post-hoc adjusted outputs of the
    methods a source publishes them for (on that dataset)."""
    plain = rows[~rows["thresholded"]].assign(scoring="plain")
    adjusted = rows[rows["thresholded"]]
    if "tau" in adjusted.columns:
        adjusted = adjusted[np.isclose(adjusted["tau"].astype(float), POSTHOC_TAU)]
    wanted = {(dataset, number.method) for (dataset, _), entries in numbers.items() for number in entries
              if number.scoring == "posthoc"}
    adjusted = adjusted[[(d, m) in wanted for d, m in zip(adjusted["dataset"], adjusted["method"])]]
    errors = pd.concat([plain, adjusted.assign(scoring="posthoc")], ignore_index=True)
    return errors.assign(value=1.0 - errors["value"])


def _profile_order(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, profile) panels: datasets in order, then the kinds of imbalance, μ, and ρ from the largest."""
    first = frame.drop_duplicates(["dataset", "profile"]).copy()
    first["_kind"] = first["imbalance"].map({kind: rank for rank, kind in enumerate(IMBALANCE_ORDER)})
    first = first.sort_values(["dataset", "_kind", "mu", "rho"], ascending=[True, True, True, False],
                              na_position="first")
    return list(zip(first["dataset"], first["profile"]))


def _panel_title(point) -> str:
    if point.imbalance == "step":
        return f"{point.dataset}: step, μ = {_show(point.mu)}, ρ = {_show(point.rho)}"
    return f"{point.dataset}: {point.imbalance}, ρ = {_show(point.rho)}"


def _label(method: str, scoring: str) -> str:
    return method + ("\n+ post-hoc LA" if scoring == "posthoc" else "")


def _draw_panel(axis, points: pd.DataFrame, columns: list[tuple[str, str]], numbers, methods) -> set[str]:
    """One panel: each column's seeds, mean ± sd and published stars; returns the sources drawn."""
    sources = set()
    for x, (method, scoring) in enumerate(columns):
        here = points[(points["method"] == method) & (points["scoring"] == scoring)]
        colour = _style(method, methods)["color"]
        if len(here):  # left to right: the seeds, their mean ± sd, then the published stars
            values = 100 * here["value"].to_numpy()
            spread = np.linspace(-0.05, 0.05, len(values)) if len(values) > 1 else np.zeros(1)
            axis.scatter(x - SEEDS_AT + spread, values, s=10, color=colour, alpha=0.7, linewidths=0, zorder=3)
            mean, sd = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
            axis.errorbar(x - MEAN_AT, mean, yerr=sd, fmt=_style(method, methods)["marker"], color=colour,
                          markersize=6, capsize=3, elinewidth=1.2, zorder=4)
            axis.annotate(f"{mean:.1f}", (x - SEEDS_AT - 0.05, mean), xytext=(-3, 0), textcoords="offset points",
                          ha="right", va="center", fontsize="x-small", color=colour)
        for number in numbers:
            if number.method == method and number.scoring == scoring:
                star = SOURCE_COLOURS.get(number.source, "0.35")
                axis.plot([x + STARS_AT], [100 * number.value], color=star, markeredgecolor=star, zorder=5,
                          **PAPER_MARKER)
                axis.annotate(f"{100 * number.value:.2f}", (x + STARS_AT, 100 * number.value), xytext=(6, 0),
                              textcoords="offset points", ha="left", va="center", fontsize="x-small", color=star)
                sources.add(number.source)
    axis.set_xticks(range(len(columns)))
    axis.set_xticklabels([_label(method, scoring) for method, scoring in columns], rotation=40, ha="right",
                         rotation_mode="anchor", fontsize="small")
    axis.set_xlim(-0.75, len(columns) - 0.35)
    axis.set_ylabel("Top-1 error (%)")
    return sources


def _legend(sources: set[str]) -> dict:
    handles = {"study: each seed": Line2D([], [], marker="o", color="0.3", linestyle="none", markersize=3,
                                         alpha=0.6),
               "study: mean ± 1 sd": Line2D([], [], marker="o", color="0.3", linestyle="-", markersize=6)}
    for source in published.SOURCES:
        if source in sources:
            colour = SOURCE_COLOURS.get(source, "0.35")
            handles[f"published: {published.SOURCES[source]}"] = Line2D([], [], color=colour,
                                                                          markeredgecolor=colour, **PAPER_MARKER)
    return handles


@_takes_settings("published")
def plot_published(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, methods=None,
                   iteration: int | None = None, datasets=None, paper: dict | None = None) -> None:
    """The study's top-1 error per method and profile, the published numbers beside it where ``paper``
    (dataset -> experiment; the workflow fills it in from the datasets' settings) names an experiment
    with published top-1 errors."""
    rows = _at_checkpoint(_scores(table, "published", "accuracy", thresholded=None, methods=methods,
                                  datasets=datasets), "published", iteration)
    numbers = _published_pairs(rows, paper)
    errors = _errors(rows, numbers)
    errors.attrs["diverged"] = rows.attrs.get("diverged", [])
    summary = summarize(errors, POINT)
    methods_drawn = _method_order(summary["method"].unique())
    panels = _profile_order(summary)
    n_columns_max = max(len(summary.loc[summary["dataset"] == dataset, ["method", "scoring"]].drop_duplicates())
                        for dataset, _ in panels)
    per_row = min(2, len(panels))
    n_rows = -(-len(panels) // per_row)
    style_sheet, context = _theme()
    sources: set[str] = set()
    with style_sheet, context:
        figure, axes = plt.subplots(n_rows, per_row, squeeze=False, layout="constrained",
                                    figsize=(per_row * (0.62 * n_columns_max + 1.6) + 0.5, 3.6 * n_rows + 1.6))
        for position, axis in enumerate(axes.flat):
            if position >= len(panels):
                axis.set_visible(False)
                continue
            dataset, profile = panels[position]
            columns = [(method, scoring) for method in methods_drawn for scoring in published.SCORINGS
                       if ((summary["dataset"] == dataset) & (summary["method"] == method)
                           & (summary["scoring"] == scoring)).any()]
            points = errors[(errors["dataset"] == dataset) & (errors["profile"] == profile)]
            first = summary[(summary["dataset"] == dataset) & (summary["profile"] == profile)].iloc[0]
            axis.set_title(_panel_title(first), fontsize="medium")
            sources |= _draw_panel(axis, points, columns, numbers.get((dataset, profile), []), methods_drawn)
        source_text = ("\nhollow stars: published top-1 errors, labelled with their source" if sources else
                       "\nno published numbers for these datasets and profiles")
        _finish(figure, pdf_path, f"Top-1 error (100 - accuracy), test set, {_checkpoint_text(iteration)}: the study "
                f"beside the published numbers\n{_spread_text(errors, summary)}{source_text}", _legend(sources))
    _write(summary, errors, numbers, sources, csv_path)


def _write(summary: pd.DataFrame, errors: pd.DataFrame, numbers: dict, sources: set[str], csv_path) -> None:
    ordered = [source for source in published.SOURCES if source in sources]
    seeds = errors.sort_values("seed").groupby(POINT, dropna=False)[["seed", "value"]].apply(
        lambda runs: "; ".join(f"{_show(seed)}: {value:.6g}" for seed, value in zip(runs["seed"], runs["value"])))
    frame = summary.merge(seeds.rename("each_seed").reset_index(), on=POINT, how="left")  # NaN μ matches NaN μ
    for source in ordered:
        frame[f"published_{source}"] = [
            next((number.value for number in numbers.get((point.dataset, point.profile), [])
                  if number.source == source and number.method == point.method and number.scoring == point.scoring),
                 np.nan)
            for point in frame.itertuples(index=False)]
    write_plotted(frame, csv_path, POINT + ["each_seed"] + [f"published_{source}" for source in ordered]
                  + ["mean", "sd", "n"], order=["dataset", "imbalance", "mu", "rho", "method", "scoring"],
                  ranks={"imbalance": list(IMBALANCE_ORDER), "scoring": list(published.SCORINGS)})
