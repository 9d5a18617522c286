"""Early stopping on the validation split, decided from the scores of a run's saved checkpoints.

A run stops at the first checkpoint after ``patience`` scored checkpoints in a row without an
improvement of more than ``min_delta`` in ``metric`` on the validation split (lower is better for
the loss, higher for every other metric), and reports its best checkpoint up to then
(``restore_best``) or the one it stopped at. A run whose patience never runs out reports its best
checkpoint (``restore_best``) or its last.

Training itself runs the whole protocol: the checkpoints of a run up to any iteration do not depend
on what it does afterwards (its data order, augmentation and learning-rate schedule are fixed by its
seed and protocol), so these are exactly the scores of the same run halted there. What stopping
would save is compute; what running on keeps is the dynamics after the stop, the memorisation of the
minority classes that the learning-dynamics study is about.

Three columns say what was decided, the same on every row of a run: ``stopped_at`` (the iteration
the run stopped at, empty when it never ran out of patience or early stopping is off),
``stopping_epoch`` (the epochs completed by then) and ``reported_at`` (the checkpoint that figures,
comparisons and learning-rate searches take as the run's result; its last without early stopping).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RUN_COLUMNS = ["dataset", "profile", "seed", "variant"]
COLUMNS = ("stopped_at", "stopping_epoch", "reported_at")
SPLIT = "validation"
LOWER_IS_BETTER = {"loss"}


class EarlyStoppingError(ValueError):
    pass


def stop(values: list[float], *, patience: int, min_delta: float, lower_is_better: bool) -> tuple[int | None, int]:
    """Where a sequence of checkpoint scores stops: (position it stopped at or None, best position up to then).

    A score improves on the best so far when it is better by more than ``min_delta``; ``patience``
    checkpoints in a row without an improvement stop the run at the last of them. A NaN never improves.
    """
    sign = -1.0 if lower_is_better else 1.0
    best_position, best, waited = 0, sign * values[0], 0
    for position in range(1, len(values)):
        value = sign * values[position]
        if not math.isnan(value) and (math.isnan(best) or value > best + min_delta):
            best_position, best, waited = position, value, 0
            continue
        waited += 1
        if waited >= patience:
            return position, best_position
    return None, best_position


def _epochs_completed(iteration: float, run: pd.Series) -> float:
    """Whole passes over the run's training set (as sampled) that ``iteration`` updates complete."""
    batch_size, examples = run.get("batch_size"), run.get("epoch_examples")
    if pd.isna(iteration) or batch_size is None or examples is None or pd.isna(batch_size) or pd.isna(examples):
        return float("nan")  # (score files of versions before these columns)
    return float(int(iteration) * int(batch_size) // int(examples))


def mark_stops(table: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The table with ``COLUMNS`` added: early stopping decided per run from ``settings`` (the
    config's ``early_stopping``), or each run's last checkpoint reported when it is not enabled."""
    table = table.copy()
    last = table.groupby(RUN_COLUMNS, dropna=False)["iteration"].transform("max")
    table["reported_at"] = last
    table["stopped_at"] = np.nan
    table["stopping_epoch"] = np.nan
    if not settings.get("enabled"):
        return table
    metric = settings["metric"]
    tau = pd.to_numeric(table["tau"]).fillna(0.0) if "tau" in table.columns else 0.0
    judged = table[(table["split"] == SPLIT) & (table["metric"] == metric) & (table["group"] == "all")
                   & (pd.to_numeric(table["class"]) == -1) & (tau == 0.0)
                   & ~table["thresholded"].astype(str).str.lower().eq("true")]
    runs = table.drop_duplicates(RUN_COLUMNS)
    unjudged = runs[pd.to_numeric(runs["diverged_at"]).isna()].merge(
        judged[RUN_COLUMNS].drop_duplicates(), how="left", on=RUN_COLUMNS, indicator=True)
    unjudged = unjudged[unjudged["_merge"] == "left_only"]
    if len(unjudged):
        run = unjudged.iloc[0]
        raise EarlyStoppingError(f"early_stopping: run {run['dataset']}/{run['profile']}/seed{run['seed']}/"
                                 f"{run['variant']} has no {metric} score on the {SPLIT} split to stop on "
                                 f"({len(unjudged)} runs lack one; is {SPLIT} in scoring.splits?)")
    decided = []
    for key, rows in judged.sort_values("iteration").groupby(RUN_COLUMNS, dropna=False):
        iterations = rows["iteration"].to_numpy()
        stopped, best = stop(rows["value"].astype(float).tolist(), patience=settings["patience"],
                             min_delta=settings["min_delta"], lower_is_better=metric in LOWER_IS_BETTER)
        reported = best if settings["restore_best"] else (len(iterations) - 1 if stopped is None else stopped)
        first = rows.iloc[0]
        decided.append({**dict(zip(RUN_COLUMNS, key)),
                        "stopped_at": np.nan if stopped is None else iterations[stopped],
                        "stopping_epoch": np.nan if stopped is None else _epochs_completed(iterations[stopped], first),
                        "reported_at": iterations[reported]})
    if not decided:
        return table
    decided = pd.DataFrame(decided).astype({"seed": table["seed"].dtype})
    merged = table[RUN_COLUMNS].merge(decided, how="left", on=RUN_COLUMNS)
    for column in COLUMNS:
        values = merged[column].to_numpy()
        table[column] = values if column != "reported_at" else np.where(np.isnan(values), last, values)
    return table
