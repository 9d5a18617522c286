""""Which method should I use?": the paired statistics against hand computations, the sentences built
from them, and the figure, its CSV and its page drawn on the default study's table shape."""

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from imbalance_study import comparison as stats
from imbalance_study import figures
from imbalance_study.figures.comparison_page import grid_sentence, setting_sentence

SETTINGS = {"metric": "roc_auc", "reference": "baseline", "confidence": 0.95}


def scores(values: dict) -> pd.DataFrame:
    """One score per run, as ``comparison`` reads them: {(profile, seed, method): value}."""
    return pd.DataFrame([{"dataset": "digits", "profile": profile, "seed": seed, "method": method, "value": value}
                         for (profile, seed, method), value in values.items()])


def table(values: dict, metric="roc_auc", diverged=()) -> pd.DataFrame:
    """A score table (figures.TABLE_COLUMNS) holding ``values`` at the last of two checkpoints, test
    split, plain and overall; the first checkpoint and thresholded rows are decoys 0.3 lower."""
    rows = []
    for (profile, seed, method), value in values.items():
        mu, rho = (float(part[2:] if part.startswith("mu") else part[3:]) for part in profile.split("-")[1:])
        run_diverged = (profile, seed, method) in diverged
        for iteration, thresholded in itertools.product((25, 1500), (False, True)):
            decoy = iteration == 25 or thresholded
            rows.append({"dataset": "digits", "profile": profile, "imbalance": "step", "mu": mu,
                         "n_minority": int(mu * 10), "rho": rho, "seed": seed, "method": method, "variant": method,
                         "sampler": {"over": "over", "under": "under"}.get(method, "none"), "sampling_ratio": 1.0,
                         "two_phase": False, "base_lr": 0.01, "selected": not run_diverged, "select_on": "",
                         "select_metric": "", "diverged_at": 700.0 if run_diverged else math.nan,
                         "iteration": iteration, "split": "test", "thresholded": thresholded, "metric": metric,
                         "class": -1, "group": "all", "value": value - 0.3 * decoy})
    return pd.DataFrame(rows)[list(figures.TABLE_COLUMNS)]


# --- paired differences --------------------------------------------------------------------------

GAINS = [0.02, 0.03, 0.05, 0.04, 0.06]  # "better": above the baseline in every one of 5 seeds
BASE = [0.90, 0.86, 0.93, 0.88, 0.91]


def five_seeds(profile="step-mu0.5-rho10"):
    values = {}
    for seed, (base, gain) in enumerate(zip(BASE, GAINS), start=1):
        values.update({(profile, seed, "baseline"): base, (profile, seed, "same"): base,
                       (profile, seed, "better"): base + gain, (profile, seed, "worse"): base - gain / 2})
    return values


def test_a_method_equal_to_the_reference_ties_with_p_one():
    rows = stats.paired_differences(scores(five_seeds()), "baseline", 0.95).set_index("method")
    same = rows.loc["same"]
    assert (same["mean"], same["ci_low"], same["ci_high"], same["p_value"]) == (0, 0, 0, 1)
    assert same["outcome"] == "tie" and not same["too_few_seeds"] and same["n"] == 5


def test_a_method_better_in_every_seed_wins():
    rows = stats.paired_differences(scores(five_seeds()), "baseline", 0.95).set_index("method")
    better, worse = rows.loc["better"], rows.loc["worse"]
    assert better["mean"] == pytest.approx(np.mean(GAINS), abs=1e-12)
    assert better["sd"] == pytest.approx(np.std(GAINS, ddof=1), abs=1e-12)
    assert better["method_mean"] - better["reference_mean"] == pytest.approx(np.mean(GAINS), abs=1e-12)
    # Exact Wilcoxon: all 5 differences positive is one of 2^5 equally likely sign patterns, two-sided.
    assert better["p_value"] == pytest.approx(2 / 2 ** 5) and worse["p_value"] == pytest.approx(2 / 2 ** 5)
    # Every bootstrap mean lies between the smallest and the largest difference.
    assert min(GAINS) <= better["ci_low"] < better["mean"] < better["ci_high"] <= max(GAINS)
    assert better["interval"] == "bootstrap BCa" and better["outcome"] == "win" and worse["outcome"] == "loss"
    # Lower is better (a loss): the same numbers, the other way round.
    lower = stats.paired_differences(scores(five_seeds()), "baseline", 0.95, lower_is_better=True)
    assert dict(zip(lower["method"], lower["outcome"])) == {"same": "tie", "better": "loss", "worse": "win"}


@pytest.mark.parametrize("n, confidence, too_few", [(1, 0.95, True), (2, 0.95, True), (3, 0.95, True),
                                                    (4, 0.95, False), (4, 0.99, False), (4, 0.995, True),
                                                    (3, 0.9, False)])
def test_too_few_seeds_when_the_bootstrap_interval_is_the_seeds_range(n, confidence, too_few):
    # The resample repeating the smallest value n times, probability n^-n, against the tail (1 - c) / 2:
    # 3^-3 = 0.037 >= 0.025 but < 0.05; 4^-4 = 0.0039 < 0.005 but >= 0.0025.
    assert stats.too_few_for_bootstrap(n, confidence) is too_few


def test_two_seeds_give_their_range_flagged_never_a_tight_interval():
    interval = stats.paired_interval([0.01, 0.05], 0.95)
    assert (interval.low, interval.high, interval.too_few_seeds) == (0.01, 0.05, True)
    assert "too few" in interval.how
    # What the percentile bootstrap would give: 3 distinct resamples, the extremes each 1/4 likely.
    bootstrap = scipy_stats.bootstrap(([0.01, 0.05],), np.mean, method="percentile", n_resamples=9999,
                                      rng=np.random.default_rng(1)).confidence_interval
    assert (bootstrap.low, bootstrap.high) == pytest.approx((0.01, 0.05))
    one = stats.paired_interval([0.03], 0.95)
    assert math.isnan(one.low) and math.isnan(one.high) and stats.outcome(one) == "undecided"
    assert stats.wilcoxon_p([0.01, 0.05]) == pytest.approx(0.5)  # 2 of 4 sign patterns as extreme


def test_the_bootstrap_interval_of_symmetric_differences_is_the_normal_one():
    """40 differences symmetric about their mean: BCa's acceleration is 0, and the bootstrap mean is
    nearly normal with the plug-in standard error s_n / sqrt(n). Tolerance: the Monte Carlo error of a
    2.5% quantile from 9,999 resamples is sqrt(0.025 * 0.975 / 9999) / phi(1.96) = 0.027 SE; 0.1 SE
    leaves room for that and the small bias correction."""
    half = np.linspace(0.001, 0.02, 20)
    differences = 0.01 + np.concatenate([half, -half])
    interval = stats.paired_interval(differences, 0.95)
    standard_error = differences.std(ddof=0) / math.sqrt(len(differences))
    z = scipy_stats.norm.ppf(0.975)
    assert interval.low == pytest.approx(0.01 - z * standard_error, abs=0.1 * standard_error)
    assert interval.high == pytest.approx(0.01 + z * standard_error, abs=0.1 * standard_error)


def test_pairs_are_by_seed_and_duplicates_are_refused():
    values = five_seeds()
    del values[("step-mu0.5-rho10", 2, "better")]  # seed 2 has no "better": 4 pairs, the mean of the others
    rows = stats.paired_differences(scores(values), "baseline", 0.95).set_index("method")
    assert rows.loc["better", "n"] == 4
    assert rows.loc["better", "mean"] == pytest.approx(np.mean([GAINS[0]] + GAINS[2:]), abs=1e-12)
    doubled = pd.concat([scores(five_seeds()), scores(five_seeds()).head(1)])
    with pytest.raises(ValueError, match="share a set, seed and method.*seed1/baseline"):
        stats.paired_differences(doubled, "baseline", 0.95)


# --- ranks across the grid -----------------------------------------------------------------------

def grid(means: dict, seeds=(1,)) -> pd.DataFrame:
    """Set means {profile: {method: value}}, the same in every seed."""
    return scores({(profile, seed, method): value for profile, row in means.items() for method, value in row.items()
                   for seed in seeds})


def test_mean_ranks_friedman_and_the_critical_difference_by_hand():
    # Four sets, A always best, C always worst: mean ranks 1, 2, 3.
    means = {f"step-mu0.5-rho{rho}": {"A": 0.9, "B": 0.8 + rho / 1000, "C": 0.7} for rho in (2, 5, 10, 20)}
    ranking = stats.rank_methods(grid(means), alpha=0.05)
    assert ranking.mean_ranks.to_dict() == {"A": 1.0, "B": 2.0, "C": 3.0}
    # chi2_F = 12 N / (k (k + 1)) [sum of squared mean ranks - k (k + 1)^2 / 4] = 4 (14 - 12) = 8, 2 df.
    assert ranking.friedman_statistic == pytest.approx(8.0)
    assert ranking.friedman_p == pytest.approx(math.exp(-8.0 / 2))  # the chi2 survival function with 2 df
    # Nemenyi: q_0.05 = 2.343 for k = 3 (Demšar's Table 5a); CD = 2.343 sqrt(3 * 4 / (6 * 4)).
    assert ranking.critical_difference == pytest.approx(2.343 * math.sqrt(0.5), abs=1e-3 * math.sqrt(0.5))
    assert ranking.groups == [("A", "B"), ("B", "C")] and not ranking.left_out and not ranking.why_not


def test_ties_share_their_mean_rank_and_missing_results_leave_a_set_out():
    means = {"step-mu0.2-rho5": {"A": 0.9, "B": 0.9, "C": 0.7}, "step-mu0.5-rho5": {"A": 0.8, "B": 0.9, "C": 0.7},
             "step-mu0.8-rho5": {"A": 0.9, "B": 0.6, "C": 0.7}, "step-mu0.8-rho9": {"A": 0.9, "C": 0.7}}
    ranking = stats.rank_methods(grid(means), alpha=0.05)
    assert ranking.mean_ranks.to_dict() == pytest.approx({"A": (1.5 + 2 + 1) / 3, "B": (1.5 + 1 + 3) / 3,
                                                          "C": (3 + 3 + 2) / 3})
    assert ranking.left_out == [("digits", "step-mu0.8-rho9")]
    loss = stats.rank_methods(grid(means), alpha=0.05, lower_is_better=True)
    assert loss.mean_ranks.to_dict() == pytest.approx({"A": (2.5 + 2 + 3) / 3, "B": (2.5 + 3 + 1) / 3,
                                                       "C": (1 + 1 + 2) / 3})


def test_no_friedman_test_with_two_methods_or_two_sets_and_one_bar_when_it_does_not_reject():
    two_methods = stats.rank_methods(grid({f"p{i}": {"A": 0.9, "B": 0.8} for i in range(5)}), 0.05)
    assert "2 methods and 5 sets" in two_methods.why_not and math.isnan(two_methods.friedman_p)
    assert two_methods.groups == []
    two_sets = stats.rank_methods(grid({f"p{i}": {"A": 0.9, "B": 0.8, "C": 0.7} for i in range(2)}), 0.05)
    assert "3 methods and 2 sets" in two_sets.why_not
    # A, B, C take every order once on 6 sets: equal mean ranks, chi2 = 0, p = 1: one bar joins them all.
    orders = list(itertools.permutations([0.9, 0.8, 0.7]))
    mixed = stats.rank_methods(grid({f"p{i}": dict(zip("ABC", order)) for i, order in enumerate(orders)}), 0.05)
    assert mixed.friedman_statistic == pytest.approx(0) and mixed.friedman_p == pytest.approx(1)
    assert [sorted(group) for group in mixed.groups] == [["A", "B", "C"]]
    tied = stats.rank_methods(grid({f"p{i}": {"A": 0.8, "B": 0.8, "C": 0.8} for i in range(3)}), 0.05)
    assert "ties" in tied.why_not and len(tied.groups) == 1


# Demšar (2006), Table 5a: the Nemenyi test's critical values q_alpha for k = 2 ... 10 classifiers.
DEMSAR_Q = {0.05: (1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164),
            0.10: (1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920)}


@pytest.mark.parametrize("alpha", sorted(DEMSAR_Q))
def test_critical_differences_match_demsars_table(alpha):
    for k, q in zip(range(2, 11), DEMSAR_Q[alpha]):
        sets = 7
        q_here = stats.nemenyi_critical_difference(k, sets, alpha) / math.sqrt(k * (k + 1) / (6 * sets))
        assert q_here == pytest.approx(q, abs=1e-3), k  # to the table's last digit (2.3437 is printed 2.343)


def test_groups_are_the_maximal_runs_within_the_critical_difference():
    ranks = pd.Series({"d": 3.6, "a": 1.0, "c": 2.9, "b": 1.5})
    assert stats.nemenyi_groups(ranks, 1.0) == [("a", "b"), ("c", "d")]
    assert stats.nemenyi_groups(ranks, 2.0) == [("a", "b", "c"), ("c", "d")]
    assert stats.nemenyi_groups(ranks, 0.1) == []


def test_win_tie_loss_counts_outcomes_against_the_reference():
    values = {**five_seeds("step-mu0.5-rho10"), **five_seeds("step-mu0.5-rho20")}
    values.update({key: value for key, value in five_seeds("step-mu0.8-rho10").items() if key[1] <= 2})
    counts = stats.win_tie_loss(stats.paired_differences(scores(values), "baseline", 0.95))
    assert counts.loc["better"].to_dict() == {"win": 3, "tie": 0, "loss": 0, "undecided": 0, "too_few_seeds": 1}
    assert counts.loc["same"].to_dict() == {"win": 0, "tie": 3, "loss": 0, "undecided": 0, "too_few_seeds": 1}
    assert counts.loc["worse"].to_dict() == {"win": 0, "tie": 0, "loss": 3, "undecided": 0, "too_few_seeds": 1}


# --- sentences, from the numbers -----------------------------------------------------------------

def test_a_setting_sentence_names_the_best_and_each_method_against_the_reference():
    values = five_seeds()
    frame = scores(values)
    differences = stats.paired_differences(frame, "baseline", 0.95)
    sentence = setting_sentence(frame, differences, "step-mu0.5-rho10", "roc_auc", "baseline", 0.95)
    better = differences.set_index("method").loc["better"]
    assert sentence.startswith(
        f"On step-mu0.5-rho10 (ROC AUC, 5 seeds): better is best ({np.mean(BASE) + np.mean(GAINS):.3f}); "
        f"against baseline ({np.mean(BASE):.3f}), same is tied (+0.000, 95% CI [+0.000, +0.000], Wilcoxon p = 1), "
        f"better is {np.mean(GAINS):.3f} above (95% CI [{better['ci_low']:+.3f}, {better['ci_high']:+.3f}], "
        f"Wilcoxon p = 0.062) and worse is {np.mean(GAINS) / 2:.3f} below (95% CI [")


def test_tied_best_and_two_seeds_flagged_in_the_sentence():
    profile = "step-mu0.5-rho100"
    values = {(profile, 1, "baseline"): 0.80, (profile, 2, "baseline"): 0.84, (profile, 1, "over"): 0.90,
              (profile, 2, "over"): 0.86, (profile, 1, "under"): 0.88, (profile, 2, "under"): 0.89}
    frame = scores(values)
    differences = stats.paired_differences(frame, "baseline", 0.95)
    sentence = setting_sentence(frame, differences, profile, "roc_auc", "baseline", 0.95)
    # under - over: -0.02 and +0.03, a range holding zero: tied; both ranges against baseline exclude zero.
    assert sentence == (
        "On step-mu0.5-rho100 (ROC AUC, 2 seeds, too few for a 95% CI, so a range is that of the seeds' "
        "differences): under and over are tied best (0.885 and 0.880); against baseline (0.820), over is 0.060 "
        "above (range of 2 seeds [+0.020, +0.100], Wilcoxon p = 0.5) and under is 0.065 above (range of 2 seeds "
        "[+0.050, +0.080], Wilcoxon p = 0.5).")


def test_tied_best_stops_at_the_first_method_told_apart_from_the_best():
    profile = "step-mu0.5-rho100"
    # over: the best; under: second by mean, below over on both seeds (a range excluding zero);
    # noisy: third by mean, its range against over holds zero. Only over is best.
    values = {(profile, 1, "baseline"): 0.80, (profile, 2, "baseline"): 0.80, (profile, 1, "over"): 0.90,
              (profile, 2, "over"): 0.90, (profile, 1, "under"): 0.88, (profile, 2, "under"): 0.89,
              (profile, 1, "noisy"): 0.95, (profile, 2, "noisy"): 0.79}
    frame = scores(values)
    sentence = setting_sentence(frame, stats.paired_differences(frame, "baseline", 0.95), profile, "roc_auc",
                                "baseline", 0.95)
    assert "over is best (0.900)" in sentence and "tied best" not in sentence


def test_the_grid_sentence_says_ranks_friedman_groups_and_tallies():
    means = {f"step-mu0.5-rho{rho}": {"A": 0.9, "B": 0.8 + rho / 1000, "C": 0.7} for rho in (2, 5, 10, 20)}
    frame = grid(means, seeds=(1, 2))
    ranking = stats.rank_methods(frame, 0.05)
    counts = stats.win_tie_loss(stats.paired_differences(frame, "C", 0.95))
    labels = {("digits", profile): profile for profile in means}
    assert grid_sentence(ranking, counts, "C", labels) == (
        "Over 4 imbalanced sets, the mean ranks (1 = best) are A 1.00, B 2.00, C 3.00; the Friedman test finds a "
        "difference (χ² = 8.00, p = 0.018), and the Nemenyi test (critical difference 1.66 at α = 0.05) cannot "
        "tell apart A and B; B and C. Against C, set by set (all on 2–3 seeds: ranges, not confidence "
        "intervals): A wins 4, ties 0, loses 0; B wins 4, ties 0, loses 0.")
    # Where only some sets have 2-3 seeds, each method says how many of its own.
    five = grid({profile: {"A": 0.9, "B": 0.85, "C": 0.7} for profile in list(means)[:2]}, seeds=(1, 2, 3, 4, 5))
    mixed = pd.concat([frame[frame["profile"].isin(list(means)[2:])], five], ignore_index=True)
    counts = stats.win_tie_loss(stats.paired_differences(mixed, "C", 0.95))
    sentence = grid_sentence(stats.rank_methods(mixed, 0.05), counts, "C", labels)
    assert "set by set: A wins 4, ties 0, loses 0 (2 on 2–3 seeds: ranges, not confidence intervals)" in sentence


# --- the figure, its numbers and its page, on the default study's shape ----------------------------

def default_study(seeds=(1, 2)) -> dict:
    """config.yaml's grid: digits, step mu {0.2, 0.5, 0.8} x rho {5, 20, 100}, baseline, over, under."""
    rng = np.random.default_rng(7)
    values = {}
    for mu, rho in itertools.product((0.2, 0.5, 0.8), (5, 20, 100)):
        for seed in seeds:
            base = 0.97 - 0.02 * math.log10(rho) * (1 + mu) + rng.normal(0, 0.01)
            for method, gain in (("baseline", 0.0), ("over", 0.03), ("under", 0.01)):
                values[(f"step-mu{mu:g}-rho{rho}", seed, method)] = base + gain * math.log10(rho) + rng.normal(0, 0.005)
    return values


def test_the_figure_writes_its_pdf_csv_and_page_from_the_numbers(tmp_path):
    values = default_study()
    pdf, csv = tmp_path / "comparison.pdf", tmp_path / "comparison.csv"
    figures.FIGURES["comparison"](table(values, diverged=[("step-mu0.8-rho100", 2, "under")]), pdf, csv, **SETTINGS)
    content = pdf.read_bytes()
    assert content.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", content)) == 2  # diagram, 9 sets
    written = pd.read_csv(csv)
    assert list(written.columns[-3:]) == ["mean", "sd", "n"] and len(written) == 9 * 2
    assert list(written["profile"].drop_duplicates()) == [f"step-mu{mu}-rho{rho}" for mu in (0.2, 0.5, 0.8)
                                                          for rho in (5, 20, 100)]
    for row in written.itertuples():
        pairs = [(values[(row.profile, seed, row.method)], values[(row.profile, seed, "baseline")])
                 for seed in (1, 2) if not (row.profile, seed, row.method) == ("step-mu0.8-rho100", 2, "under")]
        assert row.mean == pytest.approx(np.mean([a - b for a, b in pairs]), abs=1e-12)
        assert row.n == len(pairs) and row.too_few_seeds and row.metric == "roc_auc"
        assert row.method_mean == pytest.approx(np.mean([a for a, _ in pairs]), abs=1e-12)
    lone = written[(written["profile"] == "step-mu0.8-rho100") & (written["method"] == "under")].iloc[0]
    assert lone["outcome"] == "undecided" and lone["n"] == 1
    page = (tmp_path / "comparison.html").read_text()
    assert "<h1>Which method should I use?</h1>" in page and "<svg" in page
    sentences = re.findall(r"<li>(On .*?)</li>", page)
    assert len(sentences) == 9 and all("against baseline" in sentence for sentence in sentences)
    assert "1 run diverged and left out: digits/step-mu0.8-rho100/seed2/under at iteration 700" in page
    assert "Over 9 imbalanced sets, the mean ranks (1 = best) are over" in page


def test_one_seed_and_few_sets_still_draw_and_say_why_there_is_no_test(tmp_path):
    values = {key: value for key, value in default_study(seeds=(1,)).items()
              if key[0] in ("step-mu0.2-rho5", "step-mu0.5-rho5")}
    figures.FIGURES["comparison"](table(values), tmp_path / "c.pdf", tmp_path / "c.csv", **SETTINGS)
    assert set(pd.read_csv(tmp_path / "c.csv")["outcome"]) == {"undecided"}
    page = (tmp_path / "c.html").read_text()
    assert "no Friedman test: it needs at least 3 methods and 3 imbalanced sets" in page
    assert "but one seed cannot tell the methods apart" in page


def test_any_metric_of_the_table_and_its_direction(tmp_path):
    values = default_study(seeds=(1, 2, 3, 4))
    figures.FIGURES["comparison"](table(values, metric="loss"), tmp_path / "c.pdf", tmp_path / "c.csv",
                                  **{**SETTINGS, "metric": "loss"})
    written = pd.read_csv(tmp_path / "c.csv")
    # Higher values planted for over, so on a loss (lower is better) over ranks last and loses.
    assert (written.loc[written["method"] == "over", "mean_rank"] == 3).all()
    assert set(written.loc[written["method"] == "over", "outcome"]) <= {"loss", "tie"}
    with pytest.raises(figures.ScoreTableError, match=r"comparison: .*metric balanced_accuracy.*\['loss'\]"):
        figures.FIGURES["comparison"](table(values, metric="loss"), tmp_path / "x.pdf", tmp_path / "x.csv",
                                      **{**SETTINGS, "metric": "balanced_accuracy"})


def test_a_reference_without_scores_is_named(tmp_path):
    with pytest.raises(figures.ScoreTableError, match=r"reference method 'focal' \(figures.comparison.reference\)"
                                                      r".*\['baseline', 'over', 'under'\]"):
        figures.FIGURES["comparison"](table(default_study()), tmp_path / "x.pdf", tmp_path / "x.csv",
                                      **{**SETTINGS, "reference": "focal"})
    assert not list(tmp_path.iterdir())
