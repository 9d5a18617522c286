import itertools

import pandas as pd
import pytest

from imbalance_study import figures


def hand_made_table():
    rows = []
    for dataset, n_minority, rho, seed, method, iteration in itertools.product(
            ["digits"], [2, 5], [10, 100], [1, 2], ["baseline", "over"], [50, 100]):
        value = 1 - rho / 1000 * (1 if method == "baseline" else 0.5) - (100 - iteration) / 1000
        rows.append({"dataset": dataset, "profile": f"step-mu{n_minority / 10:g}-rho{rho}", "imbalance": "step",
                     "mu": n_minority / 10, "n_minority": n_minority, "rho": rho, "seed": seed, "method": method,
                     "iteration": iteration, "split": "test", "thresholded": False, "metric": "roc_auc",
                     "class": -1, "group": "all", "value": value})
    return pd.DataFrame(rows)


def test_final_scores_take_each_runs_last_checkpoint():
    final = figures.final_scores(hand_made_table(), "roc_auc")
    assert set(final["iteration"]) == {100} and len(final) == 16
    assert set(figures.final_scores(hand_made_table(), "roc_auc", iteration=50)["iteration"]) == {50}
    with pytest.raises(figures.ScoreTableError, match="no scores at iteration 70"):
        figures.final_scores(hand_made_table(), "roc_auc", iteration=70)


def test_fig3_is_a_pdf(tmp_path):
    figures.plot_fig3(hand_made_table(), tmp_path / "fig3.pdf")
    assert (tmp_path / "fig3.pdf").read_bytes()[:4] == b"%PDF"


def test_a_score_file_missing_columns_is_named(tmp_path):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    hand_made_table().to_csv(good, index=False)
    hand_made_table().drop(columns=["rho", "value"]).to_csv(bad, index=False)
    assert len(figures.load_scores([good])) == 32
    with pytest.raises(figures.ScoreTableError, match=r"bad\.csv.*\['rho', 'value'\]"):
        figures.load_scores([good, bad])
