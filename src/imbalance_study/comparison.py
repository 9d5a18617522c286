"""Comparing methods honestly: paired differences against a reference method, and ranks across a grid.

Numbers only; ``figures.comparison`` draws them and ``figures.comparison_page`` words them. The
input is one score per run (its last checkpoint, test split, selected and not diverged;
``figures.table`` chooses those rows) in a frame with the columns of ``SET_COLUMNS``, ``seed``,
``method`` and ``value``.

- ``paired_differences``: on each imbalanced set (dataset, profile), each method minus the reference,
  paired by seed (the methods of a seed share their imbalanced set and initial weights), with a
  bootstrap confidence interval of the mean difference over seeds and the Wilcoxon signed-rank
  p-value (``scipy.stats.bootstrap``, ``scipy.stats.wilcoxon``). With few seeds the bootstrap says
  little: where the resample that repeats the smallest difference n times is itself in the interval's
  tail (probability n^-n, 2 and 3 seeds at 95%), the percentile interval is the range of the seeds'
  differences, so that range is reported and flagged ``too_few_seeds``, never a bootstrap interval
  that claims more. One seed gives no interval at all.
- ``rank_methods``: each method's rank on each set by its mean over seeds (1 = best, ties averaged),
  its mean rank over the sets where every method has a result, the Friedman test over those sets and
  the Nemenyi critical difference of Demšar (JMLR 2006), with the groups of methods it cannot tell apart.
- ``win_tie_loss``: per method, on how many sets it beats the reference, ties with it (the interval
  holds zero) or loses, and on how many one seed left it undecided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

SET_COLUMNS = ["dataset", "profile"]
LOWER_IS_BETTER = frozenset({"loss"})  # every other metric of the score table: higher is better
OUTCOMES = ("win", "tie", "loss", "undecided")
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # the same table gives the same intervals, run after run


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    how: str  # how it was obtained, for the table and the page
    too_few_seeds: bool = False


def too_few_for_bootstrap(n: int, confidence: float) -> bool:
    """Whether the bootstrap's percentile interval of a mean over n seeds is just the seeds' range:
    the resample repeating the smallest value n times has probability n^-n, in the tail when that is
    at least (1 - confidence) / 2."""
    return n < 2 or float(n) ** -n >= (1 - confidence) / 2


def paired_interval(differences, confidence: float) -> Interval:
    """The confidence interval of the mean paired difference over seeds (see the module docstring)."""
    differences = np.asarray(differences, dtype=float)
    n = len(differences)
    if n < 2:
        return Interval(math.nan, math.nan, "none: one seed" if n else "none: no seed with both", n > 0)
    if too_few_for_bootstrap(n, confidence):
        return Interval(float(differences.min()), float(differences.max()),
                        f"range of {n} seeds (too few for a bootstrap)", True)
    if np.all(differences == differences[0]):  # a bootstrap of identical values: every resample the same
        return Interval(float(differences[0]), float(differences[0]), "bootstrap: every seed the same difference")
    for method in ("BCa", "percentile"):  # BCa cannot be computed on some degenerate samples
        result = stats.bootstrap((differences,), np.mean, confidence_level=confidence,
                                 n_resamples=BOOTSTRAP_RESAMPLES, method=method,
                                 rng=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return Interval(float(low), float(high), f"bootstrap {method}")
    raise ValueError(f"no bootstrap interval for the differences {differences.tolist()}")


def wilcoxon_p(differences) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (exact for small samples without
    zeros or ties, scipy's choice); 1 when every difference is zero, NaN without any pair."""
    differences = np.asarray(differences, dtype=float)
    if len(differences) == 0:
        return math.nan
    if np.all(differences == 0):  # the statistic sits at the centre of its null distribution
        return 1.0
    return float(stats.wilcoxon(differences).pvalue)


def outcome(interval: Interval, lower_is_better: bool = False) -> str:
    """win, loss or tie (the interval holds zero) for the method; undecided without an interval."""
    if math.isnan(interval.low):
        return "undecided"
    if interval.low <= 0 <= interval.high:
        return "tie"
    return "win" if (interval.low > 0) != lower_is_better else "loss"


def _check_one_per_seed(scores: pd.DataFrame) -> None:
    duplicated = scores[scores.duplicated(SET_COLUMNS + ["seed", "method"], keep=False)]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        raise ValueError(f"{len(duplicated)} scores share a set, seed and method (e.g. {first['dataset']}/"
                         f"{first['profile']}/seed{first['seed']}/{first['method']}): one run each is expected")


def paired_differences(scores: pd.DataFrame, reference: str, confidence: float,
                       lower_is_better: bool = False) -> pd.DataFrame:
    """One row per set and method other than the reference: both means over their own seeds, the
    paired difference's ``mean``, ``sd`` and ``n`` (seeds with both), its interval, p-value and outcome."""
    _check_one_per_seed(scores)
    rows = []
    for key, block in scores.groupby(SET_COLUMNS, sort=False):
        wide = block.pivot(index="seed", columns="method", values="value")
        if reference not in wide:
            continue
        for method in [m for m in dict.fromkeys(block["method"]) if m != reference]:
            pairs = wide[[method, reference]].dropna()
            differences = (pairs[method] - pairs[reference]).to_numpy()
            interval = paired_interval(differences, confidence)
            rows.append({**dict(zip(SET_COLUMNS, key)), "method": method, "reference": reference,
                         "method_mean": wide[method].mean(), "reference_mean": wide[reference].mean(),
                         "ci_low": interval.low, "ci_high": interval.high, "confidence": confidence,
                         "interval": interval.how, "too_few_seeds": interval.too_few_seeds,
                         "p_value": wilcoxon_p(differences), "outcome": outcome(interval, lower_is_better),
                         "mean": differences.mean() if len(differences) else math.nan,
                         "sd": differences.std(ddof=1) if len(differences) > 1 else math.nan,
                         "n": len(differences)})
    columns = SET_COLUMNS + ["method", "reference", "method_mean", "reference_mean", "ci_low", "ci_high",
                             "confidence", "interval", "too_few_seeds", "p_value", "outcome", "mean", "sd", "n"]
    return pd.DataFrame(rows, columns=columns)


def nemenyi_critical_difference(methods: int, sets: int, alpha: float) -> float:
    """Demšar's critical difference of mean ranks: q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the
    studentized range quantile for k groups and infinite degrees of freedom over sqrt(2)."""
    q_alpha = stats.studentized_range.ppf(1 - alpha, methods, np.inf) / math.sqrt(2)
    return float(q_alpha * math.sqrt(methods * (methods + 1) / (6 * sets)))


def nemenyi_groups(mean_ranks: pd.Series, critical_difference: float) -> list[tuple[str, ...]]:
    """The maximal runs of methods (in rank order) whose mean ranks differ by less than the critical
    difference: the bars of a critical-difference diagram. Methods alone in theirs are left out."""
    ordered = mean_ranks.sort_values(kind="stable")
    names, values = list(ordered.index), ordered.to_numpy()
    groups, reach = [], -1  # reach: the last method an earlier group holds
    for start in range(len(names)):
        end = start
        while end + 1 < len(names) and values[end + 1] - values[start] < critical_difference:
            end += 1
        if end > start and end > reach:  # not inside an earlier group
            groups.append(tuple(names[start:end + 1]))
        reach = max(reach, end)
    return groups


@dataclass(frozen=True)
class Ranking:
    ranks: pd.DataFrame  # per set (rows) and method (columns): the rank of its mean over seeds
    mean_ranks: pd.Series  # per method, best first
    left_out: list  # the sets (dataset, profile) where some method has no result
    friedman_statistic: float
    friedman_p: float
    critical_difference: float
    alpha: float
    groups: list  # methods not told apart (Nemenyi), or every method when Friedman does not reject
    why_not: str = ""  # why the Friedman test was not run, when it was not


def rank_methods(scores: pd.DataFrame, alpha: float, lower_is_better: bool = False) -> Ranking:
    """Mean ranks over the sets where every method has a result, Friedman, Nemenyi (see the module docstring)."""
    _check_one_per_seed(scores)
    means = scores.groupby(SET_COLUMNS + ["method"], sort=False)["value"].mean().unstack("method")
    complete = means.dropna()
    left_out = [key for key in means.index if key not in complete.index]
    ranks = complete.apply(lambda row: pd.Series(stats.rankdata(row if lower_is_better else -row),
                                                 index=row.index), axis=1)
    mean_ranks = ranks.mean().sort_values(kind="stable")
    k, n = complete.shape[1], complete.shape[0]
    statistic = p = critical = math.nan
    groups, why_not = [], ""
    if k < 3 or n < 3:
        why_not = (f"it needs at least 3 methods and 3 imbalanced sets with a result of every method; there "
                   f"are {k} method{'s' if k != 1 else ''} and {n} set{'s' if n != 1 else ''}")
    else:
        critical = nemenyi_critical_difference(k, n, alpha)
        if (ranks.nunique(axis=1) == 1).all():  # every method tied on every set: nothing to test
            why_not, groups = "every method ties with every other on every set", [tuple(mean_ranks.index)]
        else:
            statistic, p = (float(x) for x in stats.friedmanchisquare(*(complete[m] for m in complete)))
            groups = [tuple(mean_ranks.index)] if p >= alpha else nemenyi_groups(mean_ranks, critical)
    return Ranking(ranks, mean_ranks, left_out, statistic, p, critical, alpha, groups, why_not)


def win_tie_loss(differences: pd.DataFrame) -> pd.DataFrame:
    """Per method: the number of sets of each outcome against the reference, and how many of those
    rest on intervals flagged as too few seeds."""
    counts = pd.crosstab(differences["method"], differences["outcome"]).reindex(columns=list(OUTCOMES), fill_value=0)
    counts["too_few_seeds"] = differences.groupby("method")["too_few_seeds"].sum().astype(int)
    return counts.reindex(list(dict.fromkeys(differences["method"])))
