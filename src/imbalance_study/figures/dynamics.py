"""Learning dynamics of one profile: how the majority and the minority classes are learnt over time.

``plot_dynamics`` draws two pages: group-mean recall over iterations (train and test), then the
generalisation gap (``generalisation_gap``: train minus test recall, per run) and the silhouette of
the penultimate features. Its CSV holds one row per drawn point: ``dataset``, ``profile``,
``method``, ``quantity`` (``recall``, ``generalisation_gap`` or ``silhouette``), ``split`` (train or
test; ``train-test`` for the gap; test for the silhouette, scored on a fixed test subsample),
``group`` (majority or minority classes), ``iteration``, and ``mean``, ``sd`` and ``n`` (runs).

When early stopping stopped some of the drawn runs (``stopped_at`` in the score table), page 1 marks
each panel's median stop with a dotted vertical line (``style._mark_early_stop``); the CSV is the same.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.lines import Line2D

from ..atomic import atomic_path
from .registry import _takes_settings
from .style import (PDF_METADATA, _colours_repeat, _early_stops, _finish, _grid, _iteration_axis, _line,
                    _log_iterations, _mark_early_stop, _panels_by, _profile_text, _spread_text, _style, _theme,
                    _wrapped_grid)
from .table import _keep, _method_order, _selected, summarize, write_plotted

GROUP_COLOURS = {"majority": "#1f77b4", "minority": "#d95f02", "all": "#4d4d4d"}
GROUPS = ("majority", "minority")
QUANTITIES = ("recall", "generalisation_gap", "silhouette")
GAP_SPLIT = "train-test"
COLUMNS = ["dataset", "profile", "method", "quantity", "split", "group", "iteration", "mean", "sd", "n"]


def generalisation_gap(recall: pd.DataFrame) -> pd.DataFrame:
    """Per run, class group and checkpoint: train recall minus test recall (``value``), beside
    ``train`` and ``test``, from group-mean recall rows (class -1) of both splits; a run, group and
    checkpoint scored on one split only is left out."""
    run_keys = ["dataset", "profile", "method", "variant", "seed", "group", "iteration"]
    by_split = recall.pivot_table(index=run_keys, columns="split", values="value").dropna(subset=["train", "test"])
    by_split = by_split.reset_index()
    by_split["value"] = by_split["train"] - by_split["test"]
    return by_split


def _group_rows(table: pd.DataFrame, metric: str, profile: str, methods, datasets) -> pd.DataFrame:
    """Selected, non-thresholded group means (class -1) of one metric, one profile."""
    rows = _selected(table, "dynamics", methods=methods, datasets=datasets)
    rows = _keep(rows, "dynamics", lambda r: r["profile"] == profile, f"profile {profile}", "profile")
    rows = _keep(rows, "dynamics", lambda r: r["metric"] == metric, f"metric {metric}", "metric")
    return rows[(rows["class"] == -1) & ~rows["thresholded"]]


@_takes_settings("dynamics")
def plot_dynamics(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, profile: str, methods=None,
                  datasets=None) -> None:
    """Learning dynamics of one profile, two pages.

    Page 1: mean recall of the majority and of the minority classes over iterations, on the
    training set as the run saw it (solid) and on the test set (dashed), one panel per method: the
    minority classes are learnt late (underfitting) and then fit on the training set without
    generalising (memorisation). Page 2: the generalisation gap (train minus test) per class group,
    and the silhouette of the penultimate features on a fixed test subsample.
    """
    recall = _group_rows(table, "recall", profile, methods, datasets)
    recall = _keep(recall, "dynamics", lambda r: r["group"].isin(GROUPS), "minority/majority group means", "group")
    for split in ("train", "test"):
        _keep(recall, "dynamics", lambda r: r["split"] == split, f"split {split}", "split")
    summary = summarize(recall, ["dataset", "method", "split", "group", "iteration"])
    gap = summarize(generalisation_gap(recall), ["dataset", "method", "group", "iteration"]).assign(split=GAP_SPLIT)
    silhouette = _selected(table, "dynamics", methods=methods, datasets=datasets)
    silhouette = silhouette[(silhouette["metric"] == "silhouette") & (silhouette["profile"] == profile)
                            & silhouette["method"].isin(summary["method"].unique())
                            & silhouette["dataset"].isin(summary["dataset"].unique())
                            & silhouette["group"].isin(GROUPS)]
    silhouette_summary = (summarize(silhouette, ["dataset", "method", "split", "group", "iteration"])
                          if len(silhouette) else None)
    spread = _spread_text(recall, summary)
    named = _profile_text(profile, recall)
    plotted = []
    style_sheet, context = _theme()
    with style_sheet, context, atomic_path(pdf_path) as temporary, PdfPages(temporary, metadata=PDF_METADATA) as pages:
        log_x = _log_iterations(summary["iteration"])
        stops = _early_stops(recall)
        figure, cells = _wrapped_grid(_panels_by(summary, "method", order=_method_order), lambda d, m: f"{d}: {m}",
                                      sharey=True)  # recall: one scale, 0 to 1
        handles = {"majority classes": Line2D([], [], color=GROUP_COLOURS["majority"]),
                   "minority classes": Line2D([], [], color=GROUP_COLOURS["minority"]),
                   "train (as sampled)": Line2D([], [], color="black", linestyle="-"),
                   "test": Line2D([], [], color="black", linestyle="--")}
        for dataset, method, axis in cells:
            here = summary[(summary["dataset"] == dataset) & (summary["method"] == method)]
            for (group, split), line in here.groupby(["group", "split"]):
                plotted.append(line.assign(quantity="recall"))
                _line(axis, line, "iteration", f"{group}, {split}", GROUP_COLOURS[group], marker="",
                      linestyle="-" if split == "train" else "--")
            _mark_early_stop(axis, stops, dataset, method, handles)
            _iteration_axis(axis, here["iteration"], log_x)
            axis.set_ylabel("Mean recall of the group")
        _finish(figure, None, f"Learning dynamics, profile {named}: majority vs minority classes, "
                f"train vs test\n{spread}", handles, pages=pages)
        panels = {dataset: ["generalisation gap"] + (["silhouette"] if silhouette_summary is not None else [])
                  for dataset in summary["dataset"].unique()}
        figure, cells = _grid(panels, lambda d, what: f"{d}: {what}", sharey=False)
        methods_present = _method_order(summary["method"].unique())
        # One colour per method; markers as well only when there are more methods than colours.
        looks = {method: {"color": _style(method, methods_present)["color"],
                          "marker": _style(method, methods_present)["marker"] if _colours_repeat(methods_present)
                          else ""} for method in methods_present}
        for dataset, what, axis in cells:
            source = gap if what == "generalisation gap" else silhouette_summary
            quantity = "generalisation_gap" if what == "generalisation gap" else "silhouette"
            here = source[source["dataset"] == dataset]
            for method in methods_present:
                for group, linestyle in zip(GROUPS, ("-", "--")):
                    line = here[(here["method"] == method) & (here["group"] == group)]
                    if not line.empty:
                        plotted.append(line.assign(quantity=quantity))
                        _line(axis, line, "iteration", f"{method}, {group}", linestyle=linestyle, **looks[method])
            _iteration_axis(axis, here["iteration"], log_x)
            axis.set_ylabel("Train − test recall" if what == "generalisation gap" else "Silhouette (test subsample)")
        handles = {method: Line2D([], [], **looks[method]) for method in methods_present}
        handles.update({"majority classes": Line2D([], [], color="black", linestyle="-"),
                        "minority classes": Line2D([], [], color="black", linestyle="--")})
        _finish(figure, None, f"Generalisation gap and representation quality, profile {named}\n{spread}",
                handles, pages=pages)
    drawn = pd.concat(plotted, ignore_index=True).assign(profile=profile)
    write_plotted(drawn, csv_path, COLUMNS, order=["dataset", "method", "quantity", "split", "group", "iteration"],
                  ranks={"quantity": QUANTITIES, "split": ("train", "test", GAP_SPLIT), "group": GROUPS})
