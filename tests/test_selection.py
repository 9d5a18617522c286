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
