import pandas as pd
import pytest

from imbalance_study import selection


def search_rows(variant, seed, validation, test, select_on="validation", iterations=(10, 100)):
    """Score rows of one run of a search on (dataset d, profile p, method over)."""
    rows = []
    for iteration in iterations:
        late = iteration == max(iterations)
        for split, value in (("validation", validation), ("test", test)):
            rows.append({"dataset": "d", "profile": "p", "seed": seed, "method": "over", "variant": variant,
                         "selected": False, "select_on": select_on, "select_metric": "roc_auc", "diverged_at": None,
                         "iteration": iteration, "split": split, "thresholded": False, "metric": "roc_auc",
                         "class": -1, "group": "all", "value": value if late else 0.99})
    return rows


def selected_runs(table):
    marked = selection.mark_selected(table)
    return set(map(tuple, marked[marked["selected"]][["seed", "variant"]].drop_duplicates().to_numpy().tolist()))


def test_the_best_run_on_the_validation_split_at_the_last_checkpoint_is_selected():
    table = pd.DataFrame(search_rows("over-lr0.05", 1, 0.80, 0.95) + search_rows("over-lr0.05", 2, 0.90, 0.85)
                         + search_rows("over-lr0.005", 1, 0.85, 0.99) + search_rows("over-lr0.005", 2, 0.70, 0.60))
    assert selected_runs(table) == {(2, "over-lr0.05")}


def test_selecting_on_the_test_set_picks_the_papers_choice():
    table = pd.DataFrame(search_rows("over-lr0.05", 1, 0.80, 0.95, "test")
                         + search_rows("over-lr0.005", 1, 0.85, 0.99, "test"))
    assert selected_runs(table) == {(1, "over-lr0.005")}


def test_runs_outside_a_search_keep_their_flag():
    plain = pd.DataFrame(search_rows("baseline", 1, 0.5, 0.5, select_on="")).assign(selected=True, method="baseline")
    table = pd.concat([plain, pd.DataFrame(search_rows("over-lr0.05", 1, 0.8, 0.9))], ignore_index=True)
    marked = selection.mark_selected(table)
    assert marked[marked["variant"] == "baseline"]["selected"].all()
    assert marked[marked["variant"] == "over-lr0.05"]["selected"].all()


def test_a_search_without_its_selection_split_is_refused():
    table = pd.DataFrame(search_rows("over-lr0.05", 1, 0.8, 0.9))
    table = table[table["split"] != "validation"]
    with pytest.raises(selection.SelectionError, match="over-lr0.05 has no roc_auc score on its 'validation'"):
        selection.mark_selected(table)


def test_a_run_that_diverged_is_never_selected():
    """Not by a search even where its last scores (before it diverged) are the best, nor outside one."""
    diverged = [{**row, "diverged_at": 100} for row in search_rows("over-lr0.5", 1, 0.99, 0.99, iterations=(10, 50))]
    table = pd.DataFrame(diverged + search_rows("over-lr0.05", 1, 0.80, 0.95) + search_rows("over-lr0.005", 1, 0.85, 0.9))
    assert selected_runs(table) == {(1, "over-lr0.005")}
    alone = pd.DataFrame([{**row, "select_on": "", "select_metric": "", "selected": True} for row in diverged])
    assert selected_runs(alone) == set()


def with_logit_adjusted_rows(table, taus=(0.5, 2.0), shift=0.5):
    """The table as the scoring writes it with a tau grid: a tau column (0 plain, 1 thresholded) and,
    for every thresholded row, one per tau of the grid, thresholded too, its value shifted so that
    reading it would change any mean."""
    table = table.assign(tau=table["thresholded"].astype(str).str.lower().eq("true").astype(float))
    thresholded = table[table["tau"] == 1.0]
    extra = [thresholded.assign(tau=tau, value=thresholded["value"] + shift) for tau in taus]
    return pd.concat([table, *extra], ignore_index=True)


def test_logit_adjusted_rows_change_no_selection():
    table = pd.DataFrame(search_rows("over-lr0.05", 1, 0.80, 0.95) + search_rows("over-lr0.005", 1, 0.85, 0.99))
    table = pd.concat([table, table.assign(thresholded=True)], ignore_index=True)
    assert selected_runs(table) == {(1, "over-lr0.005")}
    # The worse run's adjusted scores beat everything: they are thresholded, never judged.
    shifted = with_logit_adjusted_rows(table)
    shifted.loc[(shifted["tau"] > 1) & (shifted["variant"] == "over-lr0.05"), "value"] = 1.0
    assert selected_runs(shifted) == {(1, "over-lr0.005")}


def test_logit_adjusted_rows_change_no_figure(tmp_path):
    """Every figure reads the paper's variants only (tau 0 and 1): fig6 draws both, the others and
    the dynamics the plain rows; with a tau grid beside them, each draws exactly the same numbers."""
    from imbalance_study import figures
    from imbalance_study.figures.dynamics import _group_rows
    from imbalance_study.figures.table import _scores

    from .test_figures import PROFILE, draw, score_table

    table = score_table(datasets=("mnist",))
    adjusted = with_logit_adjusted_rows(table)
    assert len(adjusted) > len(table)
    for thresholded in (False, True, None):
        before = _scores(table, "fig6", "accuracy", splits=("test", "train"), thresholded=thresholded)
        after = _scores(adjusted, "fig6", "accuracy", splits=("test", "train"), thresholded=thresholded)
        pd.testing.assert_frame_equal(after.drop(columns="tau").reset_index(drop=True),
                                      before.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(_group_rows(adjusted, "recall", PROFILE, None, None).drop(columns="tau")
                                  .reset_index(drop=True),
                                  _group_rows(table, "recall", PROFILE, None, None).reset_index(drop=True))
    pd.testing.assert_frame_equal(draw(adjusted, tmp_path / "after", "fig6"), draw(table, tmp_path / "before", "fig6"))
    assert len(figures.final_scores(adjusted, "roc_auc", thresholded=True)) \
        == len(figures.final_scores(table, "roc_auc", thresholded=True))


def test_a_tau_of_the_grid_is_chosen_by_its_value():
    """A comparison draws "method + post-hoc LA (tau t)" from the rows of tau t; a tau that was not
    scored, or a table from before the grid, says so."""
    from imbalance_study import figures
    from imbalance_study.figures.table import _scores

    from .test_figures import score_table

    table = score_table(datasets=("mnist",))
    adjusted = with_logit_adjusted_rows(table, taus=(0.5, 2.0), shift=0.5)
    chosen = _scores(adjusted, "comparison", "accuracy", methods=["baseline"], thresholded=True, taus=[0.5])
    thresholded = _scores(table, "comparison", "accuracy", methods=["baseline"], thresholded=True)
    assert set(chosen["tau"]) == {0.5} and len(chosen) == len(thresholded)
    assert chosen["value"].sum() == pytest.approx(thresholded["value"].sum() + 0.5 * len(thresholded))
    with pytest.raises(figures.ScoreTableError, match=r"comparison: .*tau in \[0.75\]; the candidate rows have tau "
                                                      r"\['0', '0.5', '1', '2'\]"):
        _scores(adjusted, "comparison", "accuracy", thresholded=True, taus=[0.75])
    with pytest.raises(figures.ScoreTableError, match=r"tau in \[0.5\]"):
        _scores(table, "comparison", "accuracy", thresholded=True, taus=[0.5])
