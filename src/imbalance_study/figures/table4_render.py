"""Table 4's PDF: the two layouts of ``imbalance_study.figures.table4`` drawn as matplotlib tables.

``render_paper`` draws the paper layout from its cells (``table4.table4_layout``: one block per
dataset and metric, a column per run of a setting with few runs, grey italic rows for the paper's
numbers, the best study value of a column in bold); ``render_settings_rows`` draws the
settings-rows layout from the table's frame (``table4.table4_frame``: a row per setting, a column
per method, the best mean of a row in bold). Both captions name the checkpoint, the split a
learning-rate search selected on and the runs left out as diverged. The numbers are computed in
``table4``; this module only lays them out and saves the PDF atomically with ``PDF_METADATA``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import paper as published
from ..atomic import atomic_path
from .style import (PAPER_GREY, PAPER_LABEL, PDF_METADATA, _checkpoint_text, _diverged_text,  # first: Agg
                    _metric_label)
from .table4 import MISSING, PERCENT, table4_grids

import matplotlib.pyplot as plt  # noqa: E402


# --- both layouts: the caption's notes and the atomic save ------------------------------------------

def _searched(frame: pd.DataFrame) -> list[str]:
    return sorted({split for value in frame["select_on"] for split in value.split("/") if split})


def _selection(frame: pd.DataFrame) -> str:
    searched = _searched(frame)
    return (f"\nlearning rate of searched runs selected on the {' / '.join(searched)} split"
            + (" (optimistic)" if "test" in searched else "")) if searched else ""


def _left_out(frame: pd.DataFrame) -> str:
    left_out = _diverged_text(frame.attrs.get("diverged", []))
    return f"\n{left_out}" if left_out else ""


def _save(figure, pdf_path) -> None:
    with atomic_path(pdf_path) as temporary:
        figure.savefig(temporary, bbox_inches="tight", metadata=PDF_METADATA)
    plt.close(figure)


# --- the paper layout -------------------------------------------------------------------------------

def _two_lines(header: str) -> str:
    """A run's column header as the setting over "run k (seed s)", so that the column stays narrow."""
    setting, _, run = header.partition(", run ")
    return f"{setting}\nrun {run}" if run else setting


def render_paper(layout: pd.DataFrame, pdf_path, frame: pd.DataFrame, iteration, run_columns: int) -> None:
    """The paper layout's PDF from its cells (``layout``); ``frame`` (the table's frame) gives the
    caption's notes, ``iteration`` and ``run_columns`` its wording."""
    grids = table4_grids(layout)
    row_height, title_gap, top_gap = 0.22, 0.45, 0.55 + 0.15 * bool(_searched(frame))  # inches
    shapes = []
    for (dataset, metric), grid in grids.items():
        headers = [_two_lines(column) for column in grid.columns]
        lines = max(header.count("\n") + 1 for header in headers)
        widths = [0.075 * max([len(text) for text in grid[column]] + [len(line) for line in header.split("\n")]) + 0.25
                  for column, header in zip(grid.columns, headers)]
        shapes.append((headers, lines, widths))
    label_width = 0.075 * max(len(label) for grid in grids.values() for label in grid.index) + 0.3
    width = label_width + max(sum(widths) for _, _, widths in shapes)
    height = top_gap + sum(title_gap + row_height * (len(grid) + lines) for grid, (_, lines, _) in
                           zip(grids.values(), shapes))
    figure = plt.figure(figsize=(width, height))
    top = height - top_gap
    blocks = layout.groupby(["dataset", "metric"], sort=False)
    for ((dataset, metric), grid), (headers, lines, widths), (_, block) in zip(grids.items(), shapes, blocks):
        table_height = row_height * (len(grid) + lines)
        top -= title_gap
        axis = figure.add_axes((0, (top - table_height) / height, 1, table_height / height))
        top -= table_height
        axis.axis("off")
        # The row labels are the table's first column (left-aligned), so that every block's line up.
        text = [[label] + list(values) for label, values in zip(grid.index, grid.to_numpy().tolist())]
        rendered = axis.table(cellText=text, colLabels=[""] + headers, cellLoc="center",
                              colWidths=[w / width for w in [label_width] + widths],
                              bbox=(0, 0, (label_width + sum(widths)) / width, 1))
        rendered.auto_set_font_size(False)
        rendered.set_fontsize(8)
        rendered[0, 0].visible_edges = ""
        for column in range(len(headers) + 1):
            header = rendered[0, column]
            header.set_height(header.get_height() * lines)
            header.get_text().set_fontweight("bold")
        for line, label in enumerate(grid.index, start=1):
            rendered[line, 0].get_text().set_horizontalalignment("left")
            rendered[line, 0].PAD = 0.04
            cells = block[block["row"] == label].sort_values("position")
            if (cells["source"] == "paper").all():
                for column in range(len(headers) + 1):
                    rendered[line, column].get_text().set_color(PAPER_GREY)
                    rendered[line, column].get_text().set_fontstyle("italic")
                    rendered[line, column].set_facecolor("0.96")
            for column, best in enumerate(cells["best"], start=1):
                if best:
                    rendered[line, column].get_text().set_fontweight("bold")
        unit = " in percent" if metric in PERCENT else ""
        source = f"; {PAPER_LABEL}: {published.SOURCE}" if (block["source"] == "paper").any() else ""
        axis.set_title(f"{dataset}: {_metric_label(metric)}{unit}{source}", fontsize=9, loc="left")
    papers = "; grey italic rows: the paper's published numbers" if (layout["source"] == "paper").any() else ""
    figure.suptitle(f"Table 4: test set, no thresholding, {_checkpoint_text(iteration)}; a setting with at most "
                    f"{run_columns} runs: one column per run, else mean ± sd (n runs);\nbest study value of a column "
                    f"in bold{papers}{_selection(frame)}"
                    f"{_left_out(frame)}", fontsize=9, y=1 - 0.12 / height)
    _save(figure, pdf_path)


# --- the settings-rows layout -----------------------------------------------------------------------

def render_settings_rows(frame: pd.DataFrame, pdf_path, iteration) -> None:
    """The settings-rows layout's PDF from the table's frame, its means, sds and numbers of runs."""
    methods = frame.attrs["methods"]
    blocks = list(frame.groupby(["dataset", "metric"], sort=False))
    counts = frame[[f"{m}_n" for m in methods]].to_numpy()
    counts = counts[counts > 0]
    repeats = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"
    row_height, title_gap, top_gap = 0.22, 0.45, 0.35 + 0.15 * bool(_searched(frame))  # inches
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
                          if row[f"{m}_n"] > 0 else MISSING for m in methods])
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
    figure.suptitle(f"Table 4: test set, no thresholding, {_checkpoint_text(iteration)}, "
                    f"over {repeats} repeats per cell; best mean in bold{_selection(frame)}{_left_out(frame)}",
                    fontsize=9, y=1 - 0.12 / height)
    _save(figure, pdf_path)
