""""Which method should I use?" in words: the sentences generated from the numbers
(``imbalance_study.comparison`` computes them, ``figures.comparison`` draws them) and the report's page
that holds them.

The page, ``write_page``, is one self-contained HTML file (its style and the critical-difference diagram
inline, as SVG: nothing to fetch), so that the report can embed it as it is. In order: what was compared
and how (``intro_text``); across the grid, one sentence (``grid_sentence``: the mean ranks, the Friedman
test, the Nemenyi groups, each method's wins, ties and losses against the reference), the diagram and the
win/tie/loss table; one sentence per imbalanced set (``set_sentences``, each by ``setting_sentence``: the
best methods, then each against the reference); last, the table of the CSV.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import comparison as stats
from ..atomic import atomic_path
from .style import _diverged_text, _metric_label, _selection_text


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def scored_on_text(rows: pd.DataFrame) -> str:
    """The test set the scores are on, from the table's ``test_set`` column: "the balanced test set", "the
    stratified test set (at the data's own class ratio)", or both named when the datasets differ."""
    kinds = sorted(set(rows["test_set"].dropna())) if "test_set" in rows else []
    if kinds == ["stratified"]:
        return "the stratified test set (at the data's own class ratio)"
    if len(kinds) > 1:
        return "the test set (" + " or ".join(kinds) + ", by dataset)"
    return "the balanced test set"


def checkpoint_text(rows: pd.DataFrame) -> str:
    """Which checkpoint of each run the scores are at: its last, or the one early stopping chose on
    the validation split (``early_stopping``: rows of a stopped run carry ``stopped_at``)."""
    if "stopped_at" in rows and pd.to_numeric(rows["stopped_at"]).notna().any():
        return "checkpoint chosen by early stopping on the validation split"
    return "last checkpoint"


def _places(values) -> int:
    """Decimals that show the smallest non-zero difference with two significant digits (3 at least):
    ROC AUCs near 1 differ in the fourth decimal."""
    values = np.abs(np.asarray(values, dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    return 3 if not values.size else int(min(6, max(3, 1 - math.floor(math.log10(values.min())))))


def _interval_text(row, confidence: float, places: int) -> str:
    bounds = f"[{row['ci_low']:+.{places}f}, {row['ci_high']:+.{places}f}]"
    return f"range of {row['n']} seeds {bounds}" if row["too_few_seeds"] else f"{confidence:.0%} CI {bounds}"


def _versus(row, confidence: float, places: int) -> str:
    """One method against the reference, in words."""
    method, difference = row["method"], row["mean"]
    if row["n"] == 0:
        return f"{method} shares no seed with it"
    if row["outcome"] == "undecided":
        return f"{method} is {difference:+.{places}f} (one seed: no interval)"
    detail = f"{_interval_text(row, confidence, places)}, Wilcoxon p = {row['p_value']:.2g}"
    if row["outcome"] == "tie":
        return f"{method} is tied ({difference:+.{places}f}, {detail})"
    return f"{method} is {abs(difference):.{places}f} {'above' if difference > 0 else 'below'} ({detail})"


def setting_sentence(scores: pd.DataFrame, differences: pd.DataFrame, label: str, metric: str, reference: str,
                     confidence: float) -> str:
    """The sentence of one imbalanced set: which methods are best, then each against the reference.

    Tied best: the methods next to the best by mean, in order, whose difference to the best has an
    interval holding zero (or one seed that cannot tell), up to the first that is told apart; a noisy
    method further down is not "tied best" above a method told apart from the best with a higher mean.
    """
    lower = metric in stats.LOWER_IS_BETTER
    means = scores.groupby("method")["value"].mean().sort_values(ascending=lower, kind="stable")
    seeds = sorted(set(scores.groupby("method")["seed"].nunique()))
    best = means.index[0]
    versus_best = stats.paired_differences(scores, best, confidence, lower)
    places = _places(differences[["mean", "ci_low", "ci_high"]].to_numpy())
    close = set(versus_best.loc[versus_best["outcome"].isin(["tie", "undecided"]), "method"])
    leaders = [best]
    for method in means.index[1:]:
        if method not in close:
            break
        leaders.append(method)
    if len(leaders) == 1:
        lead = f"{best} is best ({means[best]:.{places}f})"
    elif (versus_best["outcome"] == "undecided").all():
        lead = (f"{best} has the highest mean ({means[best]:.{places}f}), but one seed cannot tell the methods "
                "apart")
    else:
        lead = f"{_join(leaders)} are tied best ({_join([f'{means[m]:.{places}f}' for m in leaders])})"
    seed_count = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    notes = [_metric_label(metric) + (", lower is better" if lower else ""),
             f"{seed_count} seed{'s' if seeds[-1] > 1 else ''}"]
    if differences["too_few_seeds"].any() and not (differences["outcome"] == "undecided").all():
        notes.append(f"too few for a {confidence:.0%} CI, so a range is that of the seeds' differences")
    text = f"On {label} ({', '.join(notes)}): {lead}"
    if reference not in means:
        return text + f"; {reference} has no result here."
    against = [_versus(row, confidence, places) for _, row in differences.iterrows()]
    return text + f"; against {reference} ({means[reference]:.{places}f}), {_join(against) if against else 'no other'}."


def set_sentences(scores: pd.DataFrame, differences: pd.DataFrame, sets: pd.DataFrame, labels: dict,
                  order: list[str], metric: str, reference: str, confidence: float) -> list[str]:
    """One ``setting_sentence`` per imbalanced set, in the order of ``sets``; its methods against the
    reference in ``order`` (by mean rank), those without a paired difference there left out."""
    sentences = []
    for _, where in sets.iterrows():
        key = (where["dataset"], where["profile"])
        in_set = lambda frame: frame[(frame["dataset"] == key[0]) & (frame["profile"] == key[1])]  # noqa: E731
        here = in_set(differences).set_index("method").reindex([m for m in order if m != reference]).dropna(
            subset=["n"]).reset_index()
        sentences.append(setting_sentence(in_set(scores), here, labels[key], metric, reference, confidence))
    return sentences


def grid_sentence(ranking: stats.Ranking, counts: pd.DataFrame, reference: str, labels: dict) -> str:
    """The sentence of the whole grid: mean ranks, the Friedman test, the Nemenyi groups, win/tie/loss."""
    sets = len(ranking.ranks)
    ranks = ", ".join(f"{method} {rank:.2f}" for method, rank in ranking.mean_ranks.items())
    text = f"Over {sets} imbalanced set{'s' if sets != 1 else ''}, the mean ranks (1 = best) are {ranks}"
    if ranking.left_out:
        text += (f" ({len(ranking.left_out)} set(s) left out, where some method has no result: "
                 f"{', '.join(labels[key] for key in ranking.left_out)})")
    if ranking.why_not:
        text += f"; no Friedman test: {ranking.why_not}."
    elif ranking.friedman_p >= ranking.alpha:
        text += (f"; the Friedman test finds no difference between them (χ² = {ranking.friedman_statistic:.2f}, "
                 f"p = {ranking.friedman_p:.2g} ≥ α = {ranking.alpha:.2g}).")
    else:
        apart = "; ".join(_join(list(group)) for group in ranking.groups)
        text += (f"; the Friedman test finds a difference (χ² = {ranking.friedman_statistic:.2f}, "
                 f"p = {ranking.friedman_p:.2g}), and the Nemenyi test (critical difference "
                 f"{ranking.critical_difference:.2f} at α = {ranking.alpha:.2g}) "
                 + (f"cannot tell apart {apart}." if apart else "tells every method apart."))
    flagged = counts["too_few_seeds"] - counts["undecided"]
    # Said once when it holds for every method's every decided set, else per method.
    all_flagged = bool(len(counts)) and (flagged == counts["win"] + counts["tie"] + counts["loss"]).all() \
        and (flagged > 0).all()
    tallies = []
    for method, row in counts.iterrows():
        tally = f"{method} wins {row['win']}, ties {row['tie']}, loses {row['loss']}"
        tally += f", undecided {row['undecided']} (one seed)" if row["undecided"] else ""
        some = flagged[method]
        tallies.append(tally + (f" ({'all' if some == row['win'] + row['tie'] + row['loss'] else some} on "
                                "2–3 seeds: ranges, not confidence intervals)" if some and not all_flagged else ""))
    every = " (all on 2–3 seeds: ranges, not confidence intervals)" if all_flagged else ""
    return text + f" Against {reference}, set by set{every}: " + "; ".join(tallies) + "."


def intro_text(rows: pd.DataFrame, differences: pd.DataFrame, metric: str, reference: str,
               confidence: float) -> str:
    """The page's opening paragraph: what is compared, on which scores, and how the intervals, ties and
    p-values are made (with their limits on few seeds), then the runs selected and those that diverged."""
    lower = metric in stats.LOWER_IS_BETTER
    diverged = _diverged_text(rows.attrs.get("diverged", []))
    most = int(differences["n"].max()) if len(differences) else 0
    return (f"Each method against {reference} on {_metric_label(metric)} ({metric}"
            f"{', lower is better' if lower else ''}), on {scored_on_text(rows)} at each run's {checkpoint_text(rows)}, "
            f"plain outputs. Paired by seed: the methods of a seed share their imbalanced set and initial weights. "
            f"Intervals: {confidence:.0%} bootstrap (BCa) of the mean difference over seeds; with 2 or 3 seeds the "
            f"bootstrap can only return the range of the seeds' differences, reported as such and flagged; one "
            f"seed gives none. A tie: the interval holds zero. p: two-sided Wilcoxon signed-rank test"
            + (f" (exact for few seeds: with n seeds it cannot fall below 2/2^n, {2 / 2 ** most:.2g} with {most})"
               if most > 1 else "")
            + f"{_selection_text(rows)}." + (f" {diverged}." if diverged else ""))


def inline_svg(figure) -> str:
    """The figure as an ``<svg>`` element to put in the page (the XML prolog and doctype cut off)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _table_html(frame: pd.DataFrame) -> str:
    """A table in a box that scrolls sideways when it is wider than the page (the CSV's has 23 columns);
    the columns' own name (``outcome`` of the win/tie/loss counts) is not drawn as an empty column."""
    frame = frame.rename_axis(columns=None)
    table = frame.to_html(index=False, na_rep="", float_format=lambda value: f"{value:.4g}", border=0)
    return f"<div class='table'>{table}</div>"


def write_page(path, intro, grid, diagram, counts, sentences, written) -> None:
    """Write the page atomically: ``diagram`` the inline SVG, ``counts`` the win/tie/loss table,
    ``written`` the CSV's rows (module docstring)."""
    style = ("body{font-family:sans-serif;max-width:70em;margin:1em auto;line-height:1.45}"
             "div.table{overflow-x:auto;margin:0.5em 0}"
             "table{border-collapse:collapse;font-size:85%}td,th{border:1px solid #ccc;padding:2px 6px;"
             "white-space:nowrap}"
             "svg{max-width:100%;height:auto}")
    items = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in sentences)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Which method should I use?</title>"
            f"<style>{style}</style></head><body><h1>Which method should I use?</h1><p>{html.escape(intro)}</p>"
            f"<h2>Across the grid</h2><p>{html.escape(grid)}</p>{diagram}{_table_html(counts)}"
            f"<h2>Per imbalanced set</h2><ul>{items}</ul>"
            f"<h2>Paired differences (comparison.csv)</h2>{_table_html(written)}</body></html>")
    with atomic_path(path) as temporary:
        Path(temporary).write_text(page, encoding="utf-8")
