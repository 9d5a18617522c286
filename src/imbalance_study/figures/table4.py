"""Table 4 (the ImageNet table): per dataset, metric and imbalance setting (μ/ρ), each method's mean ± sd.

``table4_frame`` computes it; ``write_table4`` writes it as CSV (the frame itself: per (dataset,
metric, setting) ``<method>_mean``, ``<method>_sd`` and ``<method>_n``, and ``select_on``) and
renders it as a PDF; ``plot_table4`` is the same under the figures' signature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from .registry import _takes_settings
from .style import PDF_METADATA, _checkpoint_text, _diverged_text, _metric_label  # first: selects the Agg backend
from .table import IMBALANCE_ORDER, _at_checkpoint, _method_order, _scores, _show, summarize, write_table

import matplotlib.pyplot as plt  # noqa: E402


def _setting_label(imbalance: str, mu, rho) -> str:
    if imbalance == "step":
        return f"μ = {_show(mu)}, ρ = {_show(rho)}"
    return f"{imbalance}, ρ = {_show(rho)}"


def table4_frame(table: pd.DataFrame, metric: str | list[str] | None = None, methods=None,
                 iteration: int | None = None, datasets=None) -> pd.DataFrame:
    """Table 4 as a frame: one row per dataset, metric and imbalance setting; per method its mean, sd and n.

    Test split, no thresholding, the last checkpoint of each run (or ``iteration``); one block of rows
    per metric: ``metric`` first (default ROC AUC), then whichever of ROC AUC and accuracy it is not (a
    list of metrics gives exactly those blocks). The column ``select_on`` names the split a
    learning-rate search chose a row's runs on (empty when none was searched).
    """
    if metric is None or isinstance(metric, str):
        metrics = list(dict.fromkeys([metric or "roc_auc", "roc_auc", "accuracy"]))
    else:
        metrics = list(metric)
    blocks, chosen, diverged = [], [], []
    keys = ["dataset", "metric", "imbalance", "profile", "mu", "rho"]
    for name in metrics:
        rows = _at_checkpoint(_scores(table, "table4", name, methods=methods, datasets=datasets), "table4", iteration)
        diverged = rows.attrs.get("diverged", [])
        blocks.append(summarize(rows, keys + ["method"]))
        chosen.append(rows.groupby(keys, dropna=False)["select_on"]
                      .agg(lambda splits: "/".join(sorted(set(splits) - {""}))).reset_index())
    summary = pd.concat(blocks, ignore_index=True)
    methods = _method_order(summary["method"].unique())
    frame = summary[keys].drop_duplicates().reset_index(drop=True)
    frame = frame.merge(pd.concat(chosen, ignore_index=True), on=keys, how="left")
    for method in methods:  # a merge, not a pivot: pandas pivots drop the empty μ of ramp profiles
        own = summary.loc[summary["method"] == method, keys + ["mean", "sd", "n"]]
        frame = frame.merge(own.rename(columns={s: f"{method}_{s}" for s in ("mean", "sd", "n")}), on=keys, how="left")
        frame[f"{method}_n"] = frame[f"{method}_n"].fillna(0).astype(int)
    frame.insert(2, "setting", [_setting_label(i, m, r) for i, m, r in zip(frame["imbalance"], frame["mu"],
                                                                           frame["rho"])])
    order = {"metric": {m: p for p, m in enumerate(metrics)},
             "imbalance": {k: p for p, k in enumerate(IMBALANCE_ORDER)}}
    frame = frame.assign(_metric=frame["metric"].map(order["metric"]),
                         _imbalance=frame["imbalance"].map(order["imbalance"]).fillna(len(IMBALANCE_ORDER)))
    frame = frame.sort_values(["dataset", "_metric", "_imbalance", "mu", "rho", "profile"], na_position="last")
    frame = frame.drop(columns=["_metric", "_imbalance"]).reset_index(drop=True)
    frame.attrs["diverged"] = diverged
    return frame


def write_table4(table: pd.DataFrame, csv_path: str | Path, pdf_path: str | Path, metric=None, methods=None,
                 iteration: int | None = None, datasets=None) -> pd.DataFrame:
    """Table 4 (the ImageNet table): rows = imbalance settings (μ/ρ), columns = methods.

    The CSV holds, per (dataset, metric, setting), ``<method>_mean``, ``<method>_sd`` and ``<method>_n``
    (runs); the PDF renders each (dataset, metric) block as "mean ± sd (n)", the best mean of a row in
    bold. Returns the frame written to the CSV.
    """
    frame = table4_frame(table, metric=metric, methods=methods, iteration=iteration, datasets=datasets)
    methods = [column[: -len("_mean")] for column in frame.columns if column.endswith("_mean")]
    write_table(frame, csv_path)
    blocks = list(frame.groupby(["dataset", "metric"], sort=False))
    counts = frame[[f"{m}_n" for m in methods]].to_numpy()
    counts = counts[counts > 0]
    repeats = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"
    searched = sorted({split for value in frame["select_on"] for split in value.split("/") if split})
    selection = (f"\nlearning rate of searched runs selected on the {' / '.join(searched)} split"
                 + (" (optimistic)" if "test" in searched else "")) if searched else ""
    row_height, title_gap, top_gap = 0.22, 0.45, 0.35 + 0.15 * bool(searched)  # inches
    label_width = 0.08 * max(len(label) for label in frame["setting"]) + 0.3
    width = label_width + 1.9 * len(methods)
    height = top_gap + sum(title_gap + row_height * (len(block) + 1) for _, block in blocks)
    figure = plt.figure(figsize=(width, height))
    top = height - top_gap
    for (dataset, metric_name), block in blocks:
        table_height = row_height * (len(block) + 1)
        top -= title_gap
        axis = figure.add_axes((0, (top - table_height) / height, 1, table_height / height))
        top -= table_height
        axis.axis("off")
        cells, best = [], []
        for _, row in block.iterrows():
            cells.append([f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_sd']:.3f} ({row[f'{m}_n']})"
                          if row[f"{m}_n"] > 0 else "–" for m in methods])
            means = [row[f"{m}_mean"] if row[f"{m}_n"] > 0 else -np.inf for m in methods]
            best.append(int(np.argmax(means)))
        rendered = axis.table(cellText=cells, rowLabels=list(block["setting"]), colLabels=methods, cellLoc="center",
                              colWidths=[1.9 / width] * len(methods),
                              bbox=(label_width / width, 0, 1 - label_width / width, 1))
        rendered.auto_set_font_size(False)
        rendered.set_fontsize(8)
        for line, column in enumerate(best, start=1):
            rendered[line, column].get_text().set_fontweight("bold")
        axis.set_title(f"{dataset}: {_metric_label(metric_name)}, mean ± sd (n runs)",
                       fontsize=9, loc="left")
    left_out = _diverged_text(frame.attrs.get("diverged", []))
    left_out = f"\n{left_out}" if left_out else ""
    figure.suptitle(f"Table 4: test set, no thresholding, {_checkpoint_text(iteration)}, "
                    f"over {repeats} repeats per cell; best mean in bold{selection}{left_out}", fontsize=9,
                    y=1 - 0.12 / height)
    with atomic_path(pdf_path) as temporary:
        figure.savefig(temporary, bbox_inches="tight", metadata=PDF_METADATA)
    plt.close(figure)
    return frame


@_takes_settings("table4")
def plot_table4(table: pd.DataFrame, pdf_path: str | Path, csv_path: str | Path, *, metric=None, methods=None,
                iteration: int | None = None, datasets=None) -> None:
    """Table 4 under the figures' signature: the PDF at ``pdf_path``, the CSV (the table's frame) at ``csv_path``."""
    write_table4(table, csv_path, pdf_path, metric=metric, methods=methods, iteration=iteration, datasets=datasets)
