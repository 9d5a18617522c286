"""The paper's published numbers beside the study's: Table 4 in the paper's layout with the paper's
rows, and the paper's values as marks on Figures 3 and 4 (issue 16, items 6 and 8).

Planted score tables: an ImageNet-like study (the settings of configs/paper_imagenet.yaml: (μ, ρ) =
(0.1, 10) and (0.8, 50) once, (0.9, 100) with seeds 1, 2, 3; baseline, over, under), every value
known from ``planted``.
"""

import io
import math
import shutil
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from imbalance_study import config as study_config, figures, paper, plan
from imbalance_study.figures import table4
from imbalance_study.figures.catalog import plan_figures
from imbalance_study.figures.style import _style

from .conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SETTINGS = [(0.1, 10, (1,)), (0.8, 50, (1,)), (0.9, 100, (1, 2, 3))]
# method -> (sampler, sampling ratio, planted ROC AUC at ρ = 1 before the seed's offset)
METHODS = {"baseline": ("none", math.nan, 0.98), "over": ("over", 1.0, 0.97), "under": ("under", 1.0, 0.95)}
HEADERS = ["μ = 0.1, ρ = 10", "μ = 0.8, ρ = 50", "μ = 0.9, ρ = 100, run 1 (seed 1)",
           "μ = 0.9, ρ = 100, run 2 (seed 2)", "μ = 0.9, ρ = 100, run 3 (seed 3)"]
# Table 4 of the paper, as the issue quotes it: method -> the five columns above, in percent.
PUBLISHED = {"baseline": ["99.41", "96.31", "90.74", "90.46", "90.05"],
             "over": ["99.35", "95.06", "88.38", "88.39", "88.17"],
             "under": ["96.85", "94.98", "88.35", "84.08", "83.74"]}
IMAGENET = {"imagenet": "imagenet"}


def planted(method, rho, seed, metric="roc_auc"):
    value = METHODS[method][2] - 0.03 * math.log10(rho) - 0.002 * seed
    return value - 0.3 if metric == "accuracy" else value


def imagenet_table(dataset="imagenet", methods=METHODS):
    rows = []
    for mu, rho, seeds in SETTINGS:
        for method, (sampler, ratio, _) in methods.items():
            for seed in seeds:
                for metric in ("roc_auc", "accuracy"):
                    for iteration, late in ((1000, -0.2), (320000, 0.0)):  # only the last checkpoint counts
                        rows.append({
                            "dataset": dataset, "profile": f"step-mu{mu:g}-rho{rho}", "imbalance": "step", "mu": mu,
                            "n_minority": round(mu * 1000), "rho": float(rho), "seed": seed, "method": method,
                            "variant": method, "sampler": sampler, "sampling_ratio": ratio, "two_phase": False,
                            "base_lr": 0.1, "selected": True, "select_on": "", "select_metric": "",
                            "diverged_at": math.nan, "iteration": iteration, "split": "test", "thresholded": False,
                            "metric": metric, "class": -1, "group": "all",
                            "value": planted(method, rho, seed, metric) + late})
    return pd.DataFrame(rows)[list(figures.TABLE_COLUMNS)]


@pytest.fixture
def drawn(monkeypatch):
    """The figures a plot function closes, kept open to be read back."""
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    monkeypatch.undo()
    for figure in kept:
        plt.close(figure)


def shown(method, seeds_by_column=(1, 1, 1, 2, 3), metric="roc_auc"):
    """The study's five cells of a method as the paper layout shows them."""
    rhos = (10, 50, 100, 100, 100)
    return [f"{100 * planted(method, rho, seed, metric):.2f}" for rho, seed in zip(rhos, seeds_by_column)]


def rendered_blocks(figure):
    """Each block of a rendered Table 4: (title, its matplotlib table's text as rows of strings, the table)."""
    blocks = []
    for axis in figure.axes:
        if not axis.tables:
            continue
        table = axis.tables[0]
        cells = table.get_celld()
        n_rows = max(row for row, _ in cells) + 1
        n_columns = max(column for _, column in cells) + 1
        text = [[cells[row, column].get_text().get_text() for column in range(n_columns)] for row in range(n_rows)]
        blocks.append((axis.get_title(loc="left"), text, table))
    return blocks


# --- the paper's numbers ----------------------------------------------------------------------------

def test_the_paper_numbers_are_table_4_as_published():
    for column, (mu, rho) in enumerate([(0.1, 10), (0.8, 50)]):
        for method, values in PUBLISHED.items():
            assert paper.reference("imagenet", "roc_auc", "step", mu, rho, method) == \
                pytest.approx([float(values[column]) / 100])
    for method, values in PUBLISHED.items():
        assert paper.reference("imagenet", "roc_auc", "step", 0.9, 100.0, method) == \
            pytest.approx([float(value) / 100 for value in values[2:]])
    # The text's "from 99 to 90" for the largest imbalance is the baseline row.
    assert math.floor(100 * paper.reference("imagenet", "roc_auc", "step", 0.1, 10, "baseline")[0]) == 99
    assert [math.floor(100 * value) for value in paper.reference("imagenet", "roc_auc", "step", 0.9, 100,
                                                                  "baseline")] == [90, 90, 90]
    # Nothing else: no accuracy, no other setting, method, kind of imbalance or experiment.
    assert paper.reference("imagenet", "accuracy", "step", 0.1, 10, "baseline") == []
    assert paper.reference("imagenet", "roc_auc", "step", 0.5, 10, "baseline") == []
    assert paper.reference("imagenet", "roc_auc", "step", 0.1, 10, "twophase_over") == []
    assert paper.reference("imagenet", "roc_auc", "linear", math.nan, 10, "baseline") == []
    assert paper.reference(None, "roc_auc", "step", 0.1, 10, "baseline") == []
    assert sum(len(values) for cell in paper.TABLE4.values() for values in cell.values()) == 15


def test_which_paper_experiment_a_dataset_repeats():
    imagenet = yaml.safe_load((REPO / "configs" / "paper_imagenet.yaml").read_text())["datasets"]["imagenet"]
    assert paper.experiment(imagenet) == "imagenet"
    assert paper.experiment({**imagenet, "n_classes": 10}) is None
    assert paper.experiment({**imagenet, "model": "lenet5"}) is None
    mnist = yaml.safe_load((REPO / "configs" / "paper_mnist.yaml").read_text())["datasets"]
    assert [paper.experiment(spec) for spec in mnist.values()] == [None] * len(mnist)
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["$defs"]["figure_paper"]["additionalProperties"]["enum"] == list(paper.EXPERIMENTS)


def test_only_the_papers_own_methods_get_its_numbers():
    assert paper.is_paper_method("baseline", "none", math.nan, False)
    assert paper.is_paper_method("over", "over", 1.0, False)
    assert not paper.is_paper_method("over", "over", 10.0, False)  # partial oversampling
    assert not paper.is_paper_method("under", "under", 1.0, True)  # two-phase
    assert not paper.is_paper_method("over", "under", 1.0, False)
    assert not paper.is_paper_method("focal", "none", math.nan, False)


# --- Table 4 in the paper's layout ------------------------------------------------------------------

def test_table4_layout_from_a_planted_score_table(tmp_path, drawn):
    table = imagenet_table()
    figures.FIGURES["table4"](table, tmp_path / "t4.pdf", tmp_path / "t4.csv", metric="roc_auc", layout="paper",
                              run_columns=3, paper=IMAGENET)
    grids = table4.table4_grids(table4.table4_layout(table, metric="roc_auc", run_columns=3, paper=IMAGENET))
    assert list(grids) == [("imagenet", "roc_auc"), ("imagenet", "accuracy")]
    roc = grids["imagenet", "roc_auc"]
    assert list(roc.index) == ["baseline", "baseline (paper)", "over", "over (paper)", "under", "under (paper)"]
    assert list(roc.columns) == HEADERS
    for method in METHODS:
        assert list(roc.loc[method]) == shown(method)  # the planted values x 100, each run in its seed's column
        assert list(roc.loc[f"{method} (paper)"]) == PUBLISHED[method]
    accuracy = grids["imagenet", "accuracy"]  # the paper publishes no accuracy: no paper rows
    assert list(accuracy.index) == list(METHODS) and list(accuracy.columns) == HEADERS
    assert list(accuracy.loc["under"]) == shown("under", metric="accuracy")

    # The PDF draws exactly these cells: read back from its matplotlib tables.
    (title, text, rendered), (accuracy_title, accuracy_text, _) = rendered_blocks(drawn[0])
    assert title == f"imagenet: ROC AUC in percent; paper: {paper.SOURCE}"
    assert accuracy_title == "imagenet: Accuracy in percent"
    assert [header.replace("\n", ", ") for header in text[0][1:]] == HEADERS
    assert [row[0] for row in text[1:]] == list(roc.index)
    assert [row[1:] for row in text[1:]] == roc.to_numpy().tolist()
    assert [row[1:] for row in accuracy_text[1:]] == accuracy.to_numpy().tolist()
    cells = rendered.get_celld()
    for line, label in enumerate(roc.index, start=1):
        style = cells[line, 1].get_text()
        assert (style.get_fontstyle() == "italic") == label.endswith("(paper)")
        assert (style.get_color() == "0.4") == label.endswith("(paper)")
    assert all(cells[1, column].get_text().get_fontweight() == "bold" for column in range(1, 6))  # baseline best

    # The CSV stays the summary frame, with the paper's mean, sd and n per method beside it.
    written = pd.read_csv(tmp_path / "t4.csv")
    frame = figures.table4_frame(table, metric="roc_auc", paper=IMAGENET)
    pd.testing.assert_frame_equal(written, pd.read_csv(io.StringIO(frame.to_csv(index=False))))
    roc_rows = written[written["metric"] == "roc_auc"].set_index("setting")
    assert roc_rows.loc["μ = 0.9, ρ = 100", "paper_under_mean"] == pytest.approx((88.35 + 84.08 + 83.74) / 300)
    assert roc_rows.loc["μ = 0.9, ρ = 100", "paper_under_n"] == 3
    assert roc_rows.loc["μ = 0.1, ρ = 10", "paper_baseline_mean"] == pytest.approx(0.9941)
    assert roc_rows.loc["μ = 0.9, ρ = 100", "baseline_mean"] == pytest.approx(
        sum(planted("baseline", 100, seed) for seed in (1, 2, 3)) / 3)
    assert (written.loc[written["metric"] == "accuracy", "paper_baseline_n"] == 0).all()


def test_table4_opened_as_an_image_matches_the_papers_layout(tmp_path, drawn):
    """Rows top to bottom: each method then its paper row; columns left to right: the five settings."""
    figures.FIGURES["table4"](imagenet_table(), tmp_path / "t4.pdf", tmp_path / "t4.csv", metric="roc_auc",
                              layout="paper", run_columns=3, paper=IMAGENET)
    figure = drawn[0]
    figure.canvas.draw()
    _, text, rendered = rendered_blocks(figure)[0]
    cells = rendered.get_celld()
    renderer = figure.canvas.get_renderer()
    boxes = {key: cell.get_window_extent(renderer) for key, cell in cells.items()}
    lefts = [boxes[0, column].x0 for column in range(6)]
    assert lefts == sorted(lefts) and len(set(lefts)) == 6  # label column, then the five settings in order
    tops = [boxes[row, 0].y1 for row in range(7)]
    assert tops == sorted(tops, reverse=True) and len(set(tops)) == 7  # header, then the rows downwards
    assert [row[0] for row in text[1:]] == ["baseline", "baseline (paper)", "over", "over (paper)", "under",
                                            "under (paper)"]
    for row in range(1, 7):  # every row's cells on one line, every column's cells in one column
        assert {round(boxes[row, column].y0, 3) for column in range(6)} == {round(boxes[row, 0].y0, 3)}
    for column in range(6):
        assert {round(boxes[row, column].x0, 3) for row in range(7)} == {round(lefts[column], 3)}
    if shutil.which("pdftoppm"):  # the PDF opens as an image
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-singlefile", str(tmp_path / "t4.pdf"),
                        str(tmp_path / "t4")], check=True)
        assert (tmp_path / "t4.png").read_bytes()[:4] == b"\x89PNG"


def test_a_dataset_that_is_no_paper_experiment_gets_no_paper_rows(tmp_path, drawn):
    table = imagenet_table(dataset="mnist")
    for given in (None, IMAGENET):  # the paper setting names another dataset: nothing for this one
        figures.FIGURES["table4"](table, tmp_path / "t4.pdf", tmp_path / "t4.csv", layout="paper", run_columns=3,
                                  paper=given)
        layout = table4.table4_layout(table, run_columns=3, paper=given)
        assert set(layout["source"]) == {"study"}
        assert list(table4.table4_grids(layout)["mnist", "roc_auc"].index) == list(METHODS)
        written = pd.read_csv(tmp_path / "t4.csv")
        assert not [column for column in written.columns if column.startswith("paper_")]
        expected = pd.read_csv(io.StringIO(figures.table4_frame(table).to_csv(index=False)))
        pd.testing.assert_frame_equal(written, expected)
        title, text, _ = rendered_blocks(drawn[-1])[0]
        assert "paper" not in title and not any("(paper)" in row[0] for row in text)
        assert "published" not in drawn[-1].get_suptitle()


def test_a_method_that_only_shares_the_papers_name_gets_no_paper_row():
    methods = {**METHODS, "over": ("over", 10.0, 0.97)}  # sampled to ratio 10, not to balance
    grid = table4.table4_grids(table4.table4_layout(imagenet_table(methods=methods), run_columns=3,
                                                    paper=IMAGENET))
    assert list(grid["imagenet", "roc_auc"].index) == ["baseline", "baseline (paper)", "over", "under",
                                                         "under (paper)"]


def test_more_runs_than_run_columns_show_mean_and_sd():
    grid = table4.table4_grids(table4.table4_layout(imagenet_table(), metric=["roc_auc"], run_columns=2,
                                                    paper=IMAGENET))["imagenet", "roc_auc"]
    assert list(grid.columns) == ["μ = 0.1, ρ = 10", "μ = 0.8, ρ = 50", "μ = 0.9, ρ = 100"]
    values = [100 * planted("over", 100, seed) for seed in (1, 2, 3)]
    mean, sd = sum(values) / 3, (sum((v - sum(values) / 3) ** 2 for v in values) / 2) ** 0.5
    assert grid.loc["over", "μ = 0.9, ρ = 100"] == f"{mean:.2f} ± {sd:.2f} (3)"
    assert grid.loc["under (paper)", "μ = 0.9, ρ = 100"] == "85.39 ± 2.57 (3)"
    assert grid.loc["under (paper)", "μ = 0.1, ρ = 10"] == "96.85"


def test_the_settings_rows_layout_still_renders_settings_as_rows(tmp_path, drawn):
    table = imagenet_table()
    figures.FIGURES["table4"](table, tmp_path / "t4.pdf", tmp_path / "t4.csv", layout="settings_rows",
                              run_columns=3, paper=IMAGENET)
    title, text, _ = rendered_blocks(drawn[0])[0]
    assert title == "imagenet: ROC AUC, mean ± sd (n runs)"
    assert text[0][:3] == list(METHODS)  # columns: the methods (the row labels are cells (row, -1))
    assert text[3][1].endswith("(3)")
    assert pd.read_csv(tmp_path / "t4.csv")["setting"].tolist()[:3] == ["μ = 0.1, ρ = 10", "μ = 0.8, ρ = 50",
                                                                        "μ = 0.9, ρ = 100"]


def test_an_unknown_layout_is_refused(tmp_path):
    with pytest.raises(figures.FigureSettingsError, match="table4: unknown layout 'transposed'"):
        figures.FIGURES["table4"](imagenet_table(), tmp_path / "t4.pdf", tmp_path / "t4.csv", layout="transposed",
                                  run_columns=3)


# --- marks on Figures 3 and 4 ----------------------------------------------------------------------

def paper_marks(figure):
    """The hollow stars of a figure: (panel title, x, y, colour) each."""
    marks = []
    for axis in figure.axes:
        for line in axis.get_lines():
            if line.get_marker() == "*":
                assert line.get_markerfacecolor() == "none"
                marks += [(axis.get_title(), x, y, line.get_color())
                          for x, y in zip(line.get_xdata(), line.get_ydata())]
    return marks


def legend_labels(figure):
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_fig3_marks_sit_at_the_papers_values(tmp_path, drawn):
    table = imagenet_table()
    figures.FIGURES["fig3"](table, tmp_path / "f3.pdf", tmp_path / "f3.csv", metric="roc_auc", paper=IMAGENET)
    colours = {method: _style(method, METHODS)["color"] for method in METHODS}
    expected = []
    for column, (mu, rho) in enumerate([(0.1, 10), (0.8, 50), (0.9, 100)]):
        for method, values in PUBLISHED.items():
            published = values[column:column + 1] if column < 2 else values[2:]
            expected += [(f"imagenet: {round(mu * 1000)} minority classes", rho, float(value) / 100, colours[method])
                         for value in published]
    def rounded(marks):
        return sorted((title, float(x), round(float(y), 9), tuple(round(c, 6) for c in colour))
                      for title, x, y, colour in marks)

    assert rounded(paper_marks(drawn[0])) == rounded(expected)
    assert legend_labels(drawn[0]) == ["baseline", "over", "under", "paper"]
    assert "hollow stars: the paper's published values" in drawn[0].get_suptitle()
    written = pd.read_csv(tmp_path / "f3.csv")
    assert list(written.columns) == ["dataset", "imbalance", "n_minority", "rho", "method", "metric", "mean", "sd",
                                     "n", "paper_mean", "paper_sd", "paper_n"]
    under = written[(written["method"] == "under") & (written["rho"] == 100)].iloc[0]
    assert under["paper_mean"] == pytest.approx(0.8539) and under["paper_n"] == 3
    assert under["mean"] == pytest.approx(sum(planted("under", 100, seed) for seed in (1, 2, 3)) / 3)


def test_fig4_marks_sit_at_the_papers_values(tmp_path, drawn):
    figures.FIGURES["fig4"](imagenet_table(), tmp_path / "f4.pdf", tmp_path / "f4.csv", metric="roc_auc",
                            paper=IMAGENET)
    marks = paper_marks(drawn[0])
    assert len(marks) == 15
    assert sorted(y for title, x, y, _ in marks if title == "imagenet: ρ = 100" and x == 900) == \
        pytest.approx(sorted(float(v) / 100 for values in PUBLISHED.values() for v in values[2:]))


@pytest.mark.parametrize("metric, dataset, given", [("roc_auc", "mnist", None), ("roc_auc", "mnist", IMAGENET),
                                                    ("accuracy", "imagenet", IMAGENET),
                                                    ("roc_auc", "imagenet", None)])
def test_no_marks_without_the_papers_numbers(tmp_path, drawn, metric, dataset, given):
    table = imagenet_table(dataset=dataset)
    figures.FIGURES["fig3"](table, tmp_path / "f3.pdf", tmp_path / "f3.csv", metric=metric, paper=given)
    figures.FIGURES["fig3"](table, tmp_path / "plain.pdf", tmp_path / "plain.csv", metric=metric)
    assert paper_marks(drawn[0]) == [] and "paper" not in legend_labels(drawn[0])
    assert (tmp_path / "f3.csv").read_text() == (tmp_path / "plain.csv").read_text()


# --- the workflow passes each figure the paper experiment of its datasets --------------------------

def resolved(name, figures_config):
    config = yaml.safe_load((REPO / "configs" / name).read_text())
    config["figures"] = figures_config
    study_config.validate(config, SCHEMA)
    return plan_figures(plan.resolve(config))


def test_the_workflow_names_the_paper_experiment_of_each_dataset():
    plans = resolved("paper_imagenet.yaml", {"table4": {"metric": "roc_auc"}, "fig3": {}, "fig5": {}})
    assert plans["table4"].settings == {"metric": "roc_auc", "layout": "paper", "run_columns": 3,
                                        "paper": {"imagenet": "imagenet"}}
    assert plans["fig3"].settings == {"metric": "roc_auc", "paper": {"imagenet": "imagenet"}}
    assert "paper" not in plans["fig5"].settings  # draws no published numbers
    assert '"<method> (paper)"' in plans["table4"].caption and paper.SOURCE in plans["table4"].caption
    assert "The paper's layout. Rows: the methods" in plans["table4"].caption
    assert paper.SOURCE in plans["fig3"].caption
    own = resolved("paper_imagenet.yaml", {"table4": {"layout": "settings_rows", "paper": {}}})["table4"]
    assert own.settings["paper"] == {} and "Rows: the imbalance settings" in own.caption
    mnist = resolved("mnist_reduced.yaml", {"table4": {}, "fig3": {}})
    assert "paper" not in mnist["table4"].settings and "paper" not in mnist["fig3"].settings
    assert "no paper rows" in mnist["table4"].caption


def test_a_captions_published_numbers_sentence_only_where_they_are_drawn():
    """The paper publishes ROC AUC only: an accuracy figure of the ImageNet study draws no marks, and
    its caption must not say it does."""
    plans = resolved("paper_imagenet.yaml", {"fig3": {"metric": "accuracy"}, "fig4": {}})
    assert paper.SOURCE not in plans["fig3"].caption and paper.SOURCE in plans["fig4"].caption


def test_a_searched_setting_gets_one_column_not_run_columns():
    """A learning-rate search keeps one run per method across seeds: no per-run columns to fill."""
    from imbalance_study import selection

    from .test_figures import searched_table

    table = selection.mark_selected(searched_table())
    layout = table4.table4_layout(table, metric=["roc_auc"], run_columns=3)
    assert layout["run"].isna().all() and (layout["column"] == layout["setting"]).all()
    over = layout[(layout["method"] == "over") & (layout["source"] == "study")]
    assert (over["n"] == 1).all() and over["text"].str.fullmatch(r"\d+\.\d\d").all()


# --- CIFAR-10-LT: the published top-1 errors beside the study's (figure ``published``) ---------------

# Cao et al. 2019 (Table 2) ERM / LDAM-DRW and Menon et al. 2021 (Table 3) ERM / post-hoc LA, as printed.
CAO = {("exponential", 100): (29.64, 22.97), ("exponential", 10): (13.61, 11.84), ("step", 100): (36.70, 23.08),
       ("step", 10): (17.50, 12.19)}
MENON = {("exponential", 100): (27.16, 22.60)}
LT_PROFILES = [("exponential", math.nan, 100), ("exponential", math.nan, 10), ("step", 0.5, 100), ("step", 0.5, 10)]
LT_METHODS = {"baseline": 0.30, "ldam_drw": 0.24, "logit_adjusted": 0.23, "over": 0.28}  # error at rho 100
CIFAR10_LT = {"cifar10lt": "cifar10_lt"}


def lt_error(method, rho, posthoc=False):
    """The planted mean top-1 error (a fraction) of a method on a set; post-hoc LA lowers it by 0.05."""
    return LT_METHODS[method] - 0.05 * (2 - math.log10(rho)) - 0.05 * posthoc


def lt_table(dataset="cifar10lt", methods=LT_METHODS):
    rows = []
    for imbalance, mu, rho in LT_PROFILES:
        profile = f"step-mu{mu:g}-rho{rho}" if imbalance == "step" else f"exponential-rho{rho}"
        for method in methods:
            for seed in (1, 2, 3):
                # (thresholded, tau): plain, post-hoc LA with tau 1, and a tau of the grid the figure must skip
                for thresholded, tau, error in ((False, 0.0, lt_error(method, rho)),
                                                (True, 1.0, lt_error(method, rho, posthoc=True)),
                                                (True, 2.0, 0.9)):
                    for iteration, late in ((100, 0.2), (78000, 0.0)):  # only the last checkpoint counts
                        rows.append({
                            "dataset": dataset, "profile": profile, "imbalance": imbalance, "mu": mu,
                            "n_minority": 5 if imbalance == "step" else math.nan, "rho": float(rho), "seed": seed,
                            "method": method, "variant": method, "sampler": "none", "sampling_ratio": math.nan,
                            "two_phase": False, "base_lr": 0.1, "selected": True, "select_on": "", "select_metric": "",
                            "diverged_at": math.nan, "iteration": iteration, "split": "test",
                            "thresholded": thresholded, "tau": tau, "metric": "accuracy", "class": -1,
                            "group": "all", "value": 1 - (error + 0.01 * (seed - 2) + late)})
    table = pd.DataFrame(rows)
    if "tau" not in figures.TABLE_COLUMNS:  # a table from before the tau grid: thresholded is tau 1
        table = table[table["tau"] != 2.0]
    return table[list(figures.TABLE_COLUMNS)]


def test_the_published_top1_errors_are_cao_and_menon_as_printed():
    for (imbalance, rho), (erm, ldam) in CAO.items():
        mu = 0.5 if imbalance == "step" else math.nan
        numbers = {(n.source, n.method, n.scoring): n.value for n in paper.top1_errors("cifar10_lt", imbalance, mu, rho)}
        assert numbers[("cao2019", "baseline", "plain")] == pytest.approx(erm / 100)
        assert numbers[("cao2019", "ldam_drw", "plain")] == pytest.approx(ldam / 100)
        menon = MENON.get((imbalance, rho))
        assert len(numbers) == 2 + 2 * bool(menon)
        if menon:
            assert numbers[("menon2021", "baseline", "plain")] == pytest.approx(menon[0] / 100)
            assert numbers[("menon2021", "baseline", "posthoc")] == pytest.approx(menon[1] / 100)
    assert paper.top1_errors("cifar10_lt", "exponential", None, 100.0)  # μ: None or the table's NaN
    assert not paper.top1_errors("cifar10_lt", "step", 0.2, 100)
    assert not paper.top1_errors("cifar10_lt", "linear", math.nan, 100)
    assert not paper.top1_errors("imagenet", "step", 0.9, 100) and not paper.top1_errors(None, "step", 0.5, 10)
    assert set(paper.SOURCES) == {"buda2018", "cao2019", "menon2021"} and paper.SOURCES["buda2018"] == paper.SOURCE


def test_cifar10_lt_is_named_from_the_datasets_settings():
    cifar = yaml.safe_load((REPO / "configs" / "paper_cifar10.yaml").read_text())["datasets"]["cifar10"]
    assert paper.experiment(cifar) is None  # All-CNN-C: the paper's CIFAR-10, no published errors
    lt = {**cifar, "model": "resnet32", "preprocessing": "none"}
    assert paper.experiment(lt) == "cifar10_lt"
    assert paper.experiment({**lt, "train_per_class": 500}) is None
    assert paper.experiment({**lt, "source": "torchvision_mnist"}) is None
    anchors = REPO / "configs" / "cifar10_lt.yaml"
    if anchors.exists():
        spec = yaml.safe_load(anchors.read_text())["datasets"]
        assert [paper.experiment(dataset) for dataset in spec.values()] == ["cifar10_lt"] * len(spec)
        methods = yaml.safe_load(anchors.read_text())["methods"]
        assert {n.method for numbers in paper.CIFAR10_LT.values() for n in numbers} <= set(methods)


def drawn_points(figure):
    """(panel title, x, y, colour, marker, hollow) of every marker drawn as a line (means, stars)."""
    points = []
    for axis in figure.axes:
        for line in axis.get_lines():
            if line.get_marker() not in (None, "None", "", "none", "_"):  # "_": the caps of a ± sd bar
                points += [(axis.get_title(), float(x), float(y), line.get_marker(),
                            line.get_markerfacecolor() == "none", line.get_markeredgecolor())
                           for x, y in zip(line.get_xdata(), line.get_ydata())]
    return points


def test_published_figure_draws_the_studys_error_and_the_stars(tmp_path, drawn):
    figures.FIGURES["published"](lt_table(), tmp_path / "p.pdf", tmp_path / "p.csv", paper=CIFAR10_LT)
    figure = drawn[0]
    titles = [axis.get_title() for axis in figure.axes if axis.get_visible()]
    assert titles == ["cifar10lt: step, μ = 0.5, ρ = 100", "cifar10lt: step, μ = 0.5, ρ = 10",
                      "cifar10lt: exponential, ρ = 100", "cifar10lt: exponential, ρ = 10"]  # IMBALANCE_ORDER
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert ticks == ["baseline", "baseline\n+ post-hoc LA", "over", "ldam_drw", "logit_adjusted"]  # METHOD_ORDER, a-z
    points = drawn_points(figure)
    stars = sorted((title, x, round(y, 6)) for title, x, y, marker, hollow, _ in points if marker == "*")
    assert all(hollow for *_, marker, hollow, _ in points if marker == "*")
    expected = []
    for (imbalance, rho), (erm, ldam) in CAO.items():
        title = f"cifar10lt: {imbalance}, " + ("μ = 0.5, " if imbalance == "step" else "") + f"ρ = {rho}"
        expected += [(title, 0.2, erm), (title, 3.2, ldam)]  # just right of the method's column
    expected += [("cifar10lt: exponential, ρ = 100", 0.2, 27.16), ("cifar10lt: exponential, ρ = 100", 1.2, 22.60)]
    assert stars == sorted((title, x, round(y, 6)) for title, x, y in expected)
    means = sorted((title, round(x, 6), round(y, 6)) for title, x, y, marker, hollow, _ in points if marker != "*")
    assert ("cifar10lt: exponential, ρ = 10", -0.1, round(100 * lt_error("baseline", 10), 6)) in means
    assert ("cifar10lt: exponential, ρ = 100", 0.9, round(100 * lt_error("baseline", 100, True), 6)) in means
    # every method in every panel, and baseline post-hoc (of tau 1 only) wherever a source publishes it for the dataset
    assert len(means) == 4 * 4 + 4
    assert legend_labels(figure) == ["study: each seed", "study: mean ± 1 sd", "published: Cao et al. 2019, Table 2",
                                     "published: Menon et al. 2021, Table 3"]
    assert "hollow stars: published top-1 errors" in figure.get_suptitle()

    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["dataset", "profile", "imbalance", "mu", "rho", "method", "scoring", "each_seed",
                                     "published_cao2019", "published_menon2021", "mean", "sd", "n"]
    assert len(written) == 4 * 4 + 4 and (written["n"] == 3).all() and np.allclose(written["sd"], 0.01)
    for row in written.itertuples():
        assert row.mean == pytest.approx(lt_error(row.method, row.rho, row.scoring == "posthoc"))
    exp100 = written[written["profile"] == "exponential-rho100"].set_index(["method", "scoring"])
    assert exp100.loc[("baseline", "plain"), "published_cao2019"] == pytest.approx(0.2964)
    assert exp100.loc[("baseline", "plain"), "published_menon2021"] == pytest.approx(0.2716)
    assert exp100.loc[("baseline", "posthoc"), "published_menon2021"] == pytest.approx(0.2260)
    assert math.isnan(exp100.loc[("baseline", "posthoc"), "published_cao2019"])
    assert exp100.loc[("ldam_drw", "plain"), "published_cao2019"] == pytest.approx(0.2297)
    assert math.isnan(exp100.loc[("over", "plain"), "published_cao2019"])
    seeds = [lt_error("ldam_drw", 100) + 0.01 * (seed - 2) for seed in (1, 2, 3)]
    assert exp100.loc[("ldam_drw", "plain"), "each_seed"] == "; ".join(f"{s}: {v:.6g}" for s, v in zip((1, 2, 3), seeds))

    if shutil.which("pdftoppm"):  # the PDF opens as an image
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(tmp_path / "p.pdf"), str(tmp_path / "p")],
                       check=True)
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("given", [None, IMAGENET, {"elsewhere": "cifar10_lt"}])
def test_published_figure_without_published_numbers_draws_only_the_study(tmp_path, drawn, given):
    figures.FIGURES["published"](lt_table(), tmp_path / "p.pdf", tmp_path / "p.csv", paper=given)
    points = drawn_points(drawn[0])
    assert points and not [point for point in points if point[3] == "*"]
    assert "no published numbers" in drawn[0].get_suptitle()
    written = pd.read_csv(tmp_path / "p.csv")
    assert set(written["scoring"]) == {"plain"} and not [c for c in written.columns if c.startswith("published_")]


def test_published_stars_only_beside_the_methods_the_study_ran(tmp_path, drawn):
    methods = {method: LT_METHODS[method] for method in ("baseline", "over")}  # no ldam_drw
    figures.FIGURES["published"](lt_table(methods=methods), tmp_path / "p.pdf", tmp_path / "p.csv", paper=CIFAR10_LT)
    stars = [point for point in drawn_points(drawn[0]) if point[3] == "*"]
    assert len(stars) == 4 + 2  # Cao's ERM in each panel, Menon's two at exponential ρ = 100
    assert [label.get_text() for label in drawn[0].axes[0].get_xticklabels()] == \
        ["baseline", "baseline\n+ post-hoc LA", "over"]


def test_the_workflow_draws_published_only_for_datasets_that_repeat_cifar10_lt():
    config = yaml.safe_load((REPO / "configs" / "paper_cifar10.yaml").read_text())
    config["figures"] = {"published": {}, "fig3": {}}
    config["datasets"]["cifar10"].update(model="resnet32", model_options={}, preprocessing="none")
    config["study"]["methods"] = ["baseline", "over"]  # (the two-phase methods name All-CNN-C's layers)
    config["methods"] = {name: config["methods"][name] for name in config["study"]["methods"]}
    study_config.validate(config, SCHEMA)
    plans = plan_figures(plan.resolve(config))
    assert plans["published"].settings == {"paper": {"cifar10": "cifar10_lt"}} and plans["published"].runs
    assert "Cao et al. 2019, Table 2" in plans["published"].caption
    assert "paper" in plans["fig3"].settings and paper.SOURCE not in plans["fig3"].caption  # ROC AUC: none
    plain = resolved("paper_cifar10.yaml", {"published": {}})["published"]  # All-CNN-C: not drawn
    assert "paper" not in plain.settings and plain.runs == ()
    claimed = resolved("paper_cifar10.yaml", {"published": {"paper": {"cifar10": "cifar10_lt"}}})["published"]
    assert claimed.runs  # a config may claim the experiment for a dataset
