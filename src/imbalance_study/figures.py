"""The tidy score table and the paper's figures drawn from it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .scoring import SCORE_COLUMNS  # noqa: E402

IDENTITY_COLUMNS = ("dataset", "profile", "imbalance", "mu", "n_minority", "rho", "seed", "method")
TABLE_COLUMNS = IDENTITY_COLUMNS + SCORE_COLUMNS
METRIC_LABELS = {"roc_auc": "ROC AUC", "accuracy": "Accuracy"}
METHOD_ORDER = ("baseline", "over", "under")


class ScoreTableError(ValueError):
    pass


def load_scores(paths) -> pd.DataFrame:
    """Concatenate per-run score files, refusing any that lacks a column of the contract."""
    tables = []
    for path in paths:
        try:
            table = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ScoreTableError(f"{path}: cannot read the score file ({error})") from error
        missing = [column for column in TABLE_COLUMNS if column not in table.columns]
        if missing:
            raise ScoreTableError(f"{path}: score file lacks columns {missing}")
        tables.append(table)
    if not tables:
        raise ScoreTableError("no score files given")
    return pd.concat(tables, ignore_index=True)


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def final_scores(table: pd.DataFrame, metric: str, iteration: int | None = None) -> pd.DataFrame:
    """Overall test scores at the chosen checkpoint (the last of each run by default)."""
    rows = table[(table["metric"] == metric) & (table["group"] == "all") & (table["split"] == "test")]
    if iteration is None:
        last = rows.groupby(list(IDENTITY_COLUMNS))["iteration"].transform("max")
        return rows[rows["iteration"] == last]
    chosen = rows[rows["iteration"] == iteration]
    if chosen.empty:
        raise ScoreTableError(f"no scores at iteration {iteration}; checkpoints are {sorted(rows['iteration'].unique())}")
    return chosen


def _method_order(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def plot_fig3(table: pd.DataFrame, path: str | Path, metric: str = "roc_auc", methods=None,
              iteration: int | None = None) -> None:
    """The paper's Figure 3: a metric against the imbalance ratio (log scale), step imbalance.

    One line per method with its spread over repeats (one standard deviation), one panel per number
    of minority classes, one row of panels per dataset.
    """
    scores = final_scores(table[(table["imbalance"] == "step") & ~table["thresholded"]], metric, iteration)
    if methods:
        scores = scores[scores["method"].isin(methods)]
    if scores.empty:
        raise ScoreTableError(f"nothing to plot for fig3: no step-imbalance {metric} scores")
    repeats = scores.groupby(["dataset", "n_minority", "rho", "method"])["seed"].nunique()
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    grid = sns.relplot(data=scores, kind="line", x="rho", y="value", hue="method", style="method",
                       hue_order=_method_order(scores["method"]), style_order=_method_order(scores["method"]),
                       col="n_minority", row="dataset", markers=True, dashes=False, errorbar="sd",
                       height=3.0, aspect=1.1, facet_kws={"sharey": "row", "margin_titles": True})
    grid.set(xscale="log")
    grid.set_axis_labels("Imbalance ratio ρ", METRIC_LABELS[metric])
    grid.set_titles(col_template="{col_name} minority classes", row_template="{row_name}")
    rhos = sorted(scores["rho"].unique())
    for axis in grid.axes.flat:
        axis.set_xticks(rhos)
        axis.set_xticklabels([f"{rho:g}" for rho in rhos])
        axis.minorticks_off()
    spread = f"{repeats.min()}" if repeats.min() == repeats.max() else f"{repeats.min()}–{repeats.max()}"
    grid.figure.suptitle(f"{METRIC_LABELS[metric]} vs step imbalance, at the last checkpoint "
                         f"(mean ± sd over {spread} repeats)", y=1.02)
    with atomic_path(path) as temporary:
        grid.figure.savefig(temporary, bbox_inches="tight")
    plt.close(grid.figure)
