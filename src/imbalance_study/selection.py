"""Model selection for learning-rate searches: which run of a search the figures report.

The paper trains All-CNN on CIFAR-10 at four learning rates, twice each, and keeps the best of
the eight runs judged on the test set. Choosing on the test set makes the reported score an
optimistic one; the sound default judges on a held-out validation split instead. The split a
result was selected on stays in the table (``select_on``), so every figure can say which it used.
"""

from __future__ import annotations

import pandas as pd

RUN_COLUMNS = ["dataset", "profile", "seed", "variant"]
SEARCH_COLUMNS = ["dataset", "profile", "method"]


class SelectionError(ValueError):
    pass


def mark_selected(table: pd.DataFrame) -> pd.DataFrame:
    """Set ``selected`` for the runs of learning-rate searches: one best run per (dataset, profile, method).

    A run is judged by its ``select_metric`` on its ``select_on`` split at the checkpoint it reports
    (``reported_at``, from ``early_stopping.mark_stops``: its last without early stopping),
    overall and on its plain outputs (not thresholded: tau 0, as every logit-adjusted row is
    thresholded, see ``metrics``). A run that diverged (``diverged_at``) is never selected, in a
    search or outside one: its scores are not a result. Runs outside any search keep ``selected`` as
    written otherwise.
    """
    table = table.copy()
    diverged = pd.to_numeric(table["diverged_at"]).notna()
    table.loc[diverged, "selected"] = False
    select_on = table["select_on"].fillna("").astype(str)
    searched = table[(select_on != "") & ~diverged]
    if searched.empty:
        table["selected"] = table["selected"].astype(str).str.lower().eq("true")
        return table
    last = (searched["reported_at"] if "reported_at" in searched.columns
            else searched.groupby(RUN_COLUMNS)["iteration"].transform("max"))
    judged = searched[(searched["iteration"] == last) & (searched["split"] == searched["select_on"])
                      & (searched["metric"] == searched["select_metric"]) & (searched["group"] == "all")
                      & ~searched["thresholded"].astype(str).str.lower().eq("true")]
    runs = searched.drop_duplicates(RUN_COLUMNS)
    judged_runs = judged.drop_duplicates(RUN_COLUMNS)
    if len(judged_runs) < len(runs):
        missing = runs.merge(judged_runs[RUN_COLUMNS], how="left", indicator=True)
        missing = missing[missing["_merge"] == "left_only"].iloc[0]
        raise SelectionError(f"run {missing['dataset']}/{missing['profile']}/seed{missing['seed']}/"
                             f"{missing['variant']} has no {missing['select_metric']} score on its "
                             f"'{missing['select_on']}' split to select on (is it in scoring.splits?)")
    ordered = judged.sort_values(SEARCH_COLUMNS + ["value", "seed", "variant"],
                                 ascending=[True] * len(SEARCH_COLUMNS) + [False, True, True])
    best = ordered.drop_duplicates(SEARCH_COLUMNS)[RUN_COLUMNS].assign(_best=True)
    marked = table.loc[searched.index, RUN_COLUMNS].merge(best, how="left", on=RUN_COLUMNS)
    table.loc[searched.index, "selected"] = marked["_best"].fillna(False).astype(bool).to_numpy()
    table["selected"] = table["selected"].astype(str).str.lower().eq("true")
    return table
