"""Early stopping on the validation split: where a run stops, which checkpoint it reports, the epoch
it records, the config checks, and the workflow end to end (the figures draw the reported checkpoint)."""

import math

import numpy as np
import pandas as pd
import pytest

from imbalance_study import early_stopping, figures, selection
from imbalance_study.config import ConfigError, validate

from .test_workflow import snakemake

ON = {"enabled": True, "metric": "loss", "patience": 2, "min_delta": 0.0, "restore_best": True}


@pytest.mark.parametrize("values, settings, expected", [
    # the loss falls to its best at 2, then two checkpoints without improvement stop the run at 4
    ([1.0, 0.8, 0.7, 0.75, 0.72, 0.6], {"patience": 2, "min_delta": 0.0, "lower_is_better": True}, (4, 2)),
    # patience 3 outlasts the bump and the run never stops; its best is the last
    ([1.0, 0.8, 0.7, 0.75, 0.72, 0.6], {"patience": 3, "min_delta": 0.0, "lower_is_better": True}, (None, 5)),
    # improvements of no more than min_delta do not count
    ([1.0, 0.95, 0.92, 0.5], {"patience": 2, "min_delta": 0.1, "lower_is_better": True}, (2, 0)),
    # a rising metric (AUC): ties are no improvement
    ([0.5, 0.7, 0.7, 0.7], {"patience": 2, "min_delta": 0.0, "lower_is_better": False}, (3, 1)),
    # a NaN never improves, and a first NaN is beaten by any number
    ([float("nan"), 0.9, float("nan"), float("nan")], {"patience": 2, "min_delta": 0.0, "lower_is_better": True},
     (3, 1)),
])
def test_a_run_stops_after_patience_checkpoints_without_improvement(values, settings, expected):
    assert early_stopping.stop(values, **settings) == expected


def _table(losses_by_run: dict, *, metric="loss", iterations=(0, 10, 20, 30, 40), batch_size=8, epoch_examples=40):
    """Score rows of runs: validation and test scores of ``metric`` at each checkpoint (test = 10 x
    validation, to tell the rows apart), with the identity columns early stopping reads."""
    rows = []
    for (seed, variant), losses in losses_by_run.items():
        for iteration, loss in zip(iterations, losses):
            for split, value in (("validation", loss), ("test", 10 * loss)):
                rows.append({"dataset": "d", "profile": "step-mu0.5-rho10", "imbalance": "step", "mu": 0.5,
                             "n_minority": 5, "rho": 10, "seed": seed, "method": variant, "variant": variant,
                             "sampler": "none", "sampling_ratio": None, "two_phase": False, "base_lr": None,
                             "selected": True, "select_on": "", "select_metric": "", "diverged_at": None,
                             "batch_size": batch_size, "epoch_examples": epoch_examples,
                             "iteration": iteration, "split": split, "thresholded": False, "tau": 0.0,
                             "metric": metric, "class": -1, "group": "all", "value": value})
    return figures.normalize_scores(pd.DataFrame(rows))


def test_the_table_records_the_stop_its_epoch_and_the_reported_checkpoint():
    table = _table({(1, "baseline"): [1.0, 0.8, 0.9, 0.95, 0.5],   # best at 10, stops at 30
                    (2, "baseline"): [1.0, 0.8, 0.7, 0.6, 0.5]})   # never stops
    marked = early_stopping.mark_stops(table, ON)
    runs = marked.drop_duplicates(["seed"]).set_index("seed")
    assert runs.loc[1, "stopped_at"] == 30 and runs.loc[1, "reported_at"] == 10
    assert runs.loc[1, "stopping_epoch"] == 30 * 8 // 40
    assert math.isnan(runs.loc[2, "stopped_at"]) and math.isnan(runs.loc[2, "stopping_epoch"])
    assert runs.loc[2, "reported_at"] == 40
    # Without restore_best the run reports the checkpoint it stopped at.
    at_stop = early_stopping.mark_stops(table, {**ON, "restore_best": False})
    assert set(at_stop[at_stop["seed"] == 1]["reported_at"]) == {30}
    # Off, every run reports its last checkpoint and nothing is stopped.
    off = early_stopping.mark_stops(table, {**ON, "enabled": False})
    assert set(off["reported_at"]) == {40} and off["stopped_at"].isna().all()


def test_figures_draw_the_reported_checkpoint_and_searches_judge_it():
    table = early_stopping.mark_stops(_table({(1, "baseline"): [1.0, 0.8, 0.9, 0.95, 0.5]}), ON)
    drawn = figures.final_scores(selection.mark_selected(table), "loss")
    assert drawn["iteration"].tolist() == [10] and drawn["value"].tolist() == [8.0]
    # A learning-rate search judges each run at the checkpoint it reports: the run with the better
    # validation AUC there is kept, though its last checkpoint is the worse.
    searched = _table({(1, "baseline-lr0.1"): [0.5, 0.9, 0.6, 0.6, 0.6],
                       (1, "baseline-lr0.01"): [0.5, 0.6, 0.7, 0.75, 0.8]}, metric="roc_auc").assign(
        method="baseline", select_on="validation", select_metric="roc_auc", selected=False)
    marked = selection.mark_selected(early_stopping.mark_stops(searched, {**ON, "metric": "roc_auc"}))
    assert set(marked[marked["selected"]]["variant"]) == {"baseline-lr0.1"}
    without = selection.mark_selected(early_stopping.mark_stops(searched, {**ON, "enabled": False}))
    assert set(without[without["selected"]]["variant"]) == {"baseline-lr0.01"}


def test_a_run_without_validation_scores_is_named():
    table = _table({(1, "baseline"): [1.0, 0.8, 0.9, 0.95, 0.5]})
    with pytest.raises(early_stopping.EarlyStoppingError, match="validation"):
        early_stopping.mark_stops(table[table["split"] != "validation"], ON)
    with pytest.raises(early_stopping.EarlyStoppingError, match="seed2/over"):
        both = pd.concat([table, _table({(2, "over"): [1.0] * 5})]).reset_index(drop=True)
        early_stopping.mark_stops(both[(both["seed"] == 1) | (both["split"] != "validation")], ON)


def _config(**early):
    return {"datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "test_per_class": 20,
                                    "model": "mlp", "protocol": "p"}},
            "protocols": {"p": {"iterations": 10, "batch_size": 8, "lr": 0.01, "checkpoints": [5, 10]}},
            "methods": {"baseline": {}}, "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline"],
                                                   "profiles": {"step": {"mu": [0.5], "rho": [2]}}},
            "early_stopping": {"enabled": True, **early}}


def test_the_config_refuses_early_stopping_without_a_scored_validation_split():
    with pytest.raises(ConfigError, match="datasets.digits: early_stopping watches the validation split"):
        validate(_config())
    config = _config()
    config["datasets"]["digits"]["validation_per_class"] = 5
    config["scoring"] = {"splits": ["test"]}
    with pytest.raises(ConfigError, match="scoring.splits: early_stopping"):
        validate(config)
    config["scoring"] = {"splits": ["test", "validation"]}
    validate(config)
    assert config["early_stopping"] == {"enabled": True, "metric": "loss", "patience": 5, "min_delta": 0.0,
                                        "restore_best": True}


STOPPED = {
    "datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "validation_per_class": 15,
                            "test_per_class": 20, "model": "mlp", "model_options": {"hidden": [32]},
                            "protocol": "adam_epochs"}},
    # Adam at a high rate for many epochs: the validation loss bottoms out early, then rises as the
    # small set is memorised.
    "protocols": {"adam_epochs": {"epochs": 30, "batch_size": 16, "lr": 0.01, "optimizer": "adam",
                                  "checkpoints": {"spacing": "epoch"}}},
    "methods": {"baseline": {}, "over": {"sampler": "over"}},
    "study": {"datasets": ["digits"], "seeds": [1, 2], "methods": ["baseline", "over"],
              "profiles": {"step": {"mu": [0.5], "rho": [10]}}},
    "scoring": {"splits": ["test", "validation"], "logit_adjustment_taus": []},
    "early_stopping": {"enabled": True, "patience": 3},
    "figures": {"table4": {"layout": "settings_rows"}},
}


@pytest.mark.workflow
def test_the_workflow_stops_early_and_its_figures_draw_the_reported_checkpoint(tmp_path):
    snakemake(tmp_path, config=STOPPED)
    table = pd.read_csv(tmp_path / "results" / "scores.csv")
    runs = table.drop_duplicates(["seed", "variant"])
    assert len(runs) == 4 and runs["stopped_at"].notna().any(), "no run stopped early: the test's premise failed"
    for run in runs.itertuples():
        rows = table[(table["seed"] == run.seed) & (table["variant"] == run.variant)]
        losses = rows[(rows["split"] == "validation") & (rows["metric"] == "loss") & (rows["group"] == "all")]
        losses = losses.sort_values("iteration")
        stopped, best = early_stopping.stop(losses["value"].tolist(), patience=3, min_delta=0.0, lower_is_better=True)
        iterations = losses["iteration"].to_numpy()
        assert run.reported_at == iterations[best]
        if stopped is None:
            assert math.isnan(run.stopped_at)
        else:
            assert run.stopped_at == iterations[stopped]
            # Checkpoints are at epoch ends, ceil(e * examples / batch) updates after the start.
            epoch = run.stopping_epoch
            assert epoch == int(np.floor(run.stopped_at * run.batch_size / run.epoch_examples))
            assert run.stopped_at == math.ceil(epoch * run.epoch_examples / run.batch_size)
    # Table 4 gives each method's mean test AUC at the runs' reported checkpoints, not their last.
    auc = table[(table["split"] == "test") & (table["metric"] == "roc_auc") & (table["group"] == "all")
                & ~table["thresholded"] & (table["iteration"] == table["reported_at"])]
    assert len(auc) == 4
    drawn = pd.read_csv(tmp_path / "figures" / "table4.csv")
    drawn = drawn[drawn["metric"] == "roc_auc"].iloc[0]
    for method, mean in auc.groupby("method")["value"].mean().items():
        assert drawn[f"{method}_mean"] == pytest.approx(mean, rel=1e-12)
