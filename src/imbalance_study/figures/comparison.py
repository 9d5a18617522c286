""""Which method should I use?": the critical-difference diagram and the paired intervals, drawn from the
numbers ``imbalance_study.comparison`` computes; ``comparison_page`` words the same numbers on a page.

``plot_comparison`` reads one score per run: the checkpoint it reports (its last, or early stopping's),
the test set, plain outputs (no thresholding), overall (group all), selected runs (a run that
diverged never is). It writes:

- the PDF: page 1, the critical-difference diagram (each method's mean rank over the imbalanced sets,
  bars joining the methods the Nemenyi test cannot tell apart); then, 12 sets a page, each method
  minus the reference, paired by seed, as its mean and interval over seeds;
- the CSV: one row per imbalanced set and method other than the reference: the set (``dataset``,
  ``profile``, ``imbalance``, ``mu``, ``n_minority``, ``rho``), ``metric``, ``method``, ``reference``,
  both means over seeds (``method_mean``, ``reference_mean``), the method's ``rank`` on the set and
  its ``mean_rank`` over the grid, the interval (``ci_low``, ``ci_high``, ``confidence``, how it was
  made: ``interval``, ``too_few_seeds``), the Wilcoxon ``p_value``, the ``outcome`` (win, tie, loss,
  undecided) and, last as in every figure's CSV, the ``mean``, ``sd`` and ``n`` of the paired
  differences (n: the seeds where both have a result);
- beside the PDF, the same name with ``.html`` (the rule declares it: figures/comparison.html): the
  report's page (written by ``comparison_page``), one sentence per imbalanced set and one for the
  grid, the diagram and both tables.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.lines import Line2D

from .. import comparison as stats
from ..atomic import atomic_path
from .comparison_page import (checkpoint_text, grid_sentence, inline_svg, intro_text, scored_on_text, set_sentences,
                              write_page)
from .registry import ScoreTableError, _takes_settings
from .style import PDF_METADATA, _diverged_text, _finish, _metric_label, _selection_text, _style, _theme
from .table import IMBALANCE_ORDER, _at_checkpoint, _method_order, _methods_wanted, _scores, write_table

FIGURE = "comparison"
SET_INFO = ["dataset", "profile", "imbalance", "mu", "n_minority", "rho"]
COLUMNS = SET_INFO + ["metric", "method", "reference", "method_mean", "reference_mean", "rank", "mean_rank",
                      "ci_low", "ci_high", "confidence", "interval", "too_few_seeds", "p_value", "outcome",
                      "mean", "sd", "n"]
SETS_PER_PAGE, PANEL_COLUMNS = 12, 3


def _runs(table, metric, reference, methods, datasets) -> pd.DataFrame:
    """One score per run, of the wanted methods and always the reference."""
    wanted = _methods_wanted(methods)
    rows = _scores(table, FIGURE, metric, methods=wanted and list(dict.fromkeys([reference, *wanted])),
                   datasets=datasets)
    rows = _at_checkpoint(rows, FIGURE, None)
    present = sorted(rows["method"].unique())
    if reference not in present:
        raise ScoreTableError(f"{FIGURE}: nothing to draw: no selected {metric} scores of the reference method "
                              f"'{reference}' (figures.comparison.reference); the methods present are {present}")
    if len(present) < 2:
        raise ScoreTableError(f"{FIGURE}: nothing to compare: only the reference '{reference}' has scores")
    return rows


def _sets(rows: pd.DataFrame) -> pd.DataFrame:
    """The imbalanced sets in the figures' order: dataset, kind of imbalance, μ, ρ."""
    sets = rows.drop_duplicates(stats.SET_COLUMNS)[SET_INFO].copy()
    sets["_kind"] = sets["imbalance"].map({kind: rank for rank, kind in enumerate(IMBALANCE_ORDER)})
    return sets.sort_values(["dataset", "_kind", "mu", "rho"], na_position="last").drop(columns="_kind")


def _seed_text(differences: pd.DataFrame) -> str:
    """How many seeds the paired differences rest on: "2 seeds", "3–5 seeds"."""
    counts = sorted(set(differences["n"].astype(int)))
    if not counts:
        return "no paired seeds"
    return (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}") + \
        f" paired seed{'s' if counts[-1] != 1 else ''}"


def _label(row, datasets: int) -> str:
    """The set's name: its profile (and dataset, when there are several); the natural profile with its
    ratio ρ (largest over smallest class of the training part), which its name does not carry."""
    label = f"{row['dataset']} {row['profile']}" if datasets > 1 else str(row["profile"])
    if row["imbalance"] == "natural" and pd.notna(row["rho"]):
        label += f", ρ = {row['rho']:.3g}"
    return label


def draw_cd_diagram(ranking: stats.Ranking, methods: list[str]):
    """Demšar's critical-difference diagram: a rank axis (1 = best, on the left), each method's mean
    rank led out to its label on the nearer side, a bar under the axis for each group not told apart,
    and the critical difference as a scale above it."""
    k = len(ranking.mean_ranks)
    span = max(k - 1, 1)
    order = list(ranking.mean_ranks.index)
    left, right = order[:(k + 1) // 2], order[(k + 1) // 2:][::-1]
    levels, bars = max(len(left), len(right)), len(ranking.groups)
    first = 0.3 + 0.14 * bars  # the labels' lines start below the group bars
    figure, axis = plt.subplots(figsize=(7.5, 1.3 + 0.3 * levels + 0.1 * bars), layout="constrained")
    axis.set_xlim(1 - 0.75 * span, k + 0.75 * span)
    axis.set_ylim(-(first + 0.3 * (levels - 1) + 0.2), 0.75)
    axis.axis("off")
    axis.plot([1, k], [0, 0], color="black", linewidth=1)
    for tick in range(1, k + 1):
        axis.plot([tick, tick], [0, 0.07], color="black", linewidth=1)
        axis.text(tick, 0.11, str(tick), ha="center", va="bottom")
    axis.text(k + 0.06 * span, 0.11, "mean rank", ha="left", va="bottom", fontsize="small", color="0.3")
    for side, names, end in (("left", left, 1 - 0.12 * span), ("right", right, k + 0.12 * span)):
        for level, method in enumerate(names):
            rank, y = ranking.mean_ranks[method], -(first + 0.3 * level)
            axis.plot([rank, rank, end], [0, y, y], color=_style(method, methods)["color"], linewidth=1.4)
            axis.text(end + (-0.03 if side == "left" else 0.03) * span, y, f"{method} ({rank:.2f})",
                      ha="right" if side == "left" else "left", va="center")
    for level, group in enumerate(ranking.groups):
        ranks = [ranking.mean_ranks[m] for m in group]
        axis.plot([min(ranks) - 0.02 * span, max(ranks) + 0.02 * span], [-0.14 - 0.14 * level] * 2,
                  color="black", linewidth=4, solid_capstyle="round")
    if np.isfinite(ranking.critical_difference) and ranking.critical_difference <= span:
        axis.plot([1, 1 + ranking.critical_difference], [0.55, 0.55], color="0.3", linewidth=1.2, marker="|",
                  markersize=8)
        axis.text(1 + ranking.critical_difference / 2, 0.6, f"CD = {ranking.critical_difference:.2f}",
                  ha="center", va="bottom", fontsize="small", color="0.3")
    return figure


def _cd_title(ranking: stats.Ranking, metric: str, test: str = "the balanced test set",
              checkpoint: str = "last checkpoint") -> str:
    sets = len(ranking.ranks)
    title = (f"Which method should I use? Mean rank of {_metric_label(metric)} over {sets} "
             f"imbalanced set{'s' if sets != 1 else ''} ({test.removeprefix('the ')}, {checkpoint}, mean over "
             "seeds; 1 = best)\n")
    if ranking.why_not:
        return title + f"No Friedman test: {ranking.why_not}"
    if ranking.friedman_p >= ranking.alpha:
        return title + (f"Friedman χ² = {ranking.friedman_statistic:.2f}, p = {ranking.friedman_p:.2g}: no "
                        "difference between the methods (one bar joins them all)")
    return title + (f"Friedman χ² = {ranking.friedman_statistic:.2f}, p = {ranking.friedman_p:.2g}; a bar joins "
                    f"methods within the Nemenyi critical difference (CD = {ranking.critical_difference:.2f}, "
                    f"α = {ranking.alpha:.2g}): not significantly different")


def _interval_pages(pages, differences, sets, methods, metric, reference, confidence, subtitle,
                    test: str = "the balanced test set", checkpoint: str = "last checkpoint") -> None:
    """Per imbalanced set, each method minus the reference: mean (dot) and interval (line) over seeds,
    its Wilcoxon p-value on the right; one x scale for every panel, zero marked."""
    from matplotlib.ticker import MaxNLocator

    finite = differences[["ci_low", "ci_high", "mean"]].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    reach = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-3) * 1.1
    others = [m for m in methods if m != reference]
    for start in range(0, len(sets), SETS_PER_PAGE):
        page = sets.iloc[start:start + SETS_PER_PAGE]
        rows, columns = math.ceil(len(page) / PANEL_COLUMNS), min(PANEL_COLUMNS, len(page))
        figure, axes = plt.subplots(rows, columns, figsize=(3.8 * columns + 0.6, (0.3 * len(others) + 1.0) * rows
                                                            + 1.5), squeeze=False, sharex=True, layout="constrained")
        for axis in axes.flat[len(page):]:
            axis.set_visible(False)
        for axis, (_, where) in zip(axes.flat, page.iterrows()):
            here = differences[(differences["dataset"] == where["dataset"])
                               & (differences["profile"] == where["profile"])].set_index("method")
            for position, method in enumerate(others):
                if method not in here.index or here.loc[method, "n"] == 0:
                    continue
                row, colour = here.loc[method], _style(method, methods)["color"]
                hollow = bool(row["too_few_seeds"])
                if np.isfinite(row["ci_low"]):
                    axis.plot([row["ci_low"], row["ci_high"]], [position, position], color=colour, linewidth=2.2,
                              linestyle=(0, (2, 1)) if hollow else "-", solid_capstyle="butt")
                axis.plot([row["mean"]], [position], marker="o", color=colour, markersize=5.5,
                          markerfacecolor="white" if hollow else colour, markeredgewidth=1.4)
            axis.axvline(0, color="0.3", linewidth=0.9)
            axis.set_xlim(-reach, reach)
            axis.xaxis.set_major_locator(MaxNLocator(5, symmetric=True))
            axis.set_ylim(len(others) - 0.5, -0.5)
            axis.set_yticks(range(len(others)), others)
            axis.set_title(_label(where, sets["dataset"].nunique()), fontsize="medium")
            axis.tick_params(labelbottom=True, labelsize="small")
            axis.set_xlabel(f"{_metric_label(metric)} − {reference}", fontsize="small")
            p_values = axis.twinx()  # the Wilcoxon p-values as the right-hand labels
            p_values.set_ylim(axis.get_ylim())
            p_values.set_yticks(range(len(others)), [
                f"p={here.loc[m, 'p_value']:.2g}" if m in here.index and np.isfinite(here.loc[m, "p_value"]) else ""
                for m in others])
            p_values.tick_params(labelsize="x-small", labelcolor="0.35", length=0)
            p_values.grid(False)
        kinds = {"bootstrap": ~differences["too_few_seeds"] & (differences["n"] > 1),
                 "range": differences["too_few_seeds"] & (differences["n"] > 1), "one": differences["n"] == 1}
        handles = {f"mean and {confidence:.0%} bootstrap interval (BCa) over seeds": Line2D(
                       [], [], color="0.2", marker="o", linewidth=2.2),
                   "2–3 seeds: mean and the seeds' range, too few for a bootstrap": Line2D(
                       [], [], color="0.2", marker="o", markerfacecolor="white", linestyle=(0, (2, 1)), linewidth=2.2),
                   "one seed: the difference alone": Line2D([], [], color="0.2", marker="o", linestyle="none",
                                                            markerfacecolor="white")}
        handles = {label: handle for (label, handle), shown in zip(handles.items(), kinds.values()) if shown.any()}
        _finish(figure, None, f"Each method minus {reference}, paired by seed: {_metric_label(metric)} on {test}, "
                f"{checkpoint}, no thresholding\n{subtitle}", handles, pages=pages)


@_takes_settings(FIGURE)
def plot_comparison(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric: str,
                    reference: str, confidence: float, methods=None, datasets=None) -> None:
    """Every method against ``reference`` on each imbalanced set, and ranked over the grid (module docstring)."""
    rows = _runs(table, metric, reference, methods, datasets)
    lower = metric in stats.LOWER_IS_BETTER
    scores = rows[stats.SET_COLUMNS + ["seed", "method", "value"]]
    try:
        differences = stats.paired_differences(scores, reference, confidence, lower)
        ranking = stats.rank_methods(scores, 1 - confidence, lower)
    except ValueError as error:
        raise ScoreTableError(f"{FIGURE}: {error}") from error
    sets = _sets(rows)
    labels = {(r["dataset"], r["profile"]): _label(r, sets["dataset"].nunique()) for _, r in sets.iterrows()}
    methods_present = _method_order(rows["method"].unique())
    order = list(ranking.mean_ranks.index) + [m for m in methods_present if m not in ranking.mean_ranks]
    counts = stats.win_tie_loss(differences).reindex([m for m in order if m != reference]).fillna(0).astype(int)

    sentences = set_sentences(scores, differences, sets, labels, order, metric, reference, confidence)
    grid = grid_sentence(ranking, counts, reference, labels)
    intro = intro_text(rows, differences, metric, reference, confidence)

    ranks_in_set = ranking.ranks.stack().rename("rank").reset_index() if len(ranking.ranks) else \
        pd.DataFrame(columns=stats.SET_COLUMNS + ["method", "rank"])
    written = (differences.merge(sets, on=stats.SET_COLUMNS)
               .merge(ranks_in_set, on=stats.SET_COLUMNS + ["method"], how="left")
               .assign(metric=metric, mean_rank=lambda f: f["method"].map(ranking.mean_ranks)))
    set_position = {key: position for position, key in enumerate(labels)}
    written["_set"] = [set_position[key] for key in zip(written["dataset"], written["profile"])]
    written["_method"] = written["method"].map({m: position for position, m in enumerate(methods_present)})
    written = written.sort_values(["_set", "_method"])[COLUMNS].reset_index(drop=True)

    diverged = _diverged_text(rows.attrs.get("diverged", []))  # the intervals' subtitle names them, as the intro does
    style_sheet, context = _theme()
    with style_sheet, context:
        diagram = draw_cd_diagram(ranking, methods_present)
        svg = inline_svg(diagram)
        with atomic_path(pdf_path) as temporary, PdfPages(temporary, metadata=PDF_METADATA) as pages:
            _finish(diagram, None, _cd_title(ranking, metric, scored_on_text(rows), checkpoint_text(rows)), {},
                    pages=pages)
            _interval_pages(pages, differences, sets, methods_present, metric, reference, confidence,
                            f"({_seed_text(differences)}; right: the Wilcoxon signed-rank p-value"
                            f"{_selection_text(rows)}{'; ' + diverged if diverged else ''})", scored_on_text(rows),
                            checkpoint_text(rows))
    write_page(Path(pdf_path).with_suffix(".html"), intro, grid, svg,
               counts.rename_axis("method").reset_index(), sentences, written)
    write_table(written, csv_path)
