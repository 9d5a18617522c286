"""Figure 7's two layouts on a planted score table: the paper's, (a) oversampling and (b) undersampling
with one line per number of minority classes, and today's, one panel per number of minority classes.

The figure is caught as drawn (``_finish`` is wrapped) and its lines compared with the CSV it writes.
"""

import copy

import numpy as np
import pandas as pd
import pytest

from imbalance_study import config as study_config, plan
from imbalance_study.figures import FIGURES, FigureSettingsError, catalog
from imbalance_study.figures import fig7 as fig7_module

from .test_config import SCHEMA, shipped
from .test_figures import SEEDS, assert_pdf, planted, score_table

RHO = 1000
SHIFT = {2: 0.0, 5: -0.06}  # planted per number of minority classes, so that their lines differ
BASELINE_LABEL = f"baseline (no sampling, ρ = {RHO}), dotted"
WHICH = {("baseline", 1000): "baseline", ("oversampling", 1): "over", ("oversampling", 10): "over_r10",
         ("undersampling", 1): "under", ("undersampling", 10): "under_r10"}


@pytest.fixture(scope="module")
def table():
    table = score_table()
    return table.assign(value=table["value"] + table["n_minority"].map(SHIFT).fillna(0.0))


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """Draw fig7 with the settings given (rho 1000, ROC AUC unless told); the figure as drawn and its CSV."""
    caught = []
    finish = fig7_module._finish

    def catching(figure, *args, **kwargs):
        caught.append(figure)
        finish(figure, *args, **kwargs)
    monkeypatch.setattr(fig7_module, "_finish", catching)

    def draw(table, name="fig7", **settings):
        pdf, csv = tmp_path / f"{name}.pdf", tmp_path / f"{name}.csv"
        FIGURES["fig7"](table, pdf, csv, **{"rho": RHO, "metric": "roc_auc", **settings})
        assert_pdf(pdf)
        return caught[-1], pd.read_csv(csv, keep_default_na=False, na_values=[""])
    return draw


def panels(figure):
    return [axis for axis in figure.axes if axis.get_visible()]


def labelled(axis):
    """The axis's lines with a legend label: {label: (x, y)}."""
    return {line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
            for line in axis.get_lines() if not line.get_label().startswith("_")}


def expected_line(csv, dataset, n_minority, line):
    """A sampling line as the CSV gives it, from ρ down to 1, its baseline first when it has no point at ρ."""
    here = csv[(csv["dataset"] == dataset) & (csv["n_minority"] == n_minority)]
    points = here[here["line"] == line].sort_values("imbalance_ratio_after_sampling", ascending=False)
    if not np.isclose(points["imbalance_ratio_after_sampling"], RHO).any():
        points = pd.concat([here[here["line"] == "baseline"], points])
    return points["imbalance_ratio_after_sampling"].to_numpy(float), points["mean"].to_numpy(float)


def assert_same_line(drawn_line, expected):
    order = np.argsort(-drawn_line[0])  # drawn sorted by x; compare from ρ down to 1
    assert drawn_line[0][order] == pytest.approx(expected[0])
    assert drawn_line[1][order] == pytest.approx(expected[1])


def test_the_paper_layout_draws_oversampling_and_undersampling_with_a_line_per_number_of_minority_classes(
        drawn, table):
    figure, csv = drawn(table, layout="paper")
    axes = panels(figure)
    assert [axis.get_title() for axis in axes] == ["(a) Oversampling — cifar", "(b) Undersampling — cifar",
                                                   "(a) Oversampling — mnist", "(b) Undersampling — mnist"]
    # two panels side by side per dataset, one row per dataset, the two of a row sharing y
    rows = sorted({round(axis.get_position().y0, 3) for axis in axes})
    assert len(rows) == 2 and all(len([a for a in axes if round(a.get_position().y0, 3) == y]) == 2 for y in rows)
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    for axis, (dataset, line) in zip(axes, [(d, s) for d in ("cifar", "mnist")
                                            for s in ("oversampling", "undersampling")]):
        lines = labelled(axis)
        assert sorted(lines) == ["2 minority classes", "5 minority classes"]
        for n_minority in (2, 5):
            points = lines[f"{n_minority} minority classes"]
            assert_same_line(points, expected_line(csv, dataset, n_minority, line))
            # it starts from the baseline, nothing sampled: x = ρ, y = the runs without sampling
            start = np.argmax(points[0])
            assert points[0][start] == RHO
            assert points[1][start] == pytest.approx(planted(dataset, "baseline", RHO, "roc_auc") + SHIFT[n_minority])
        # each baseline also a dotted horizontal line of its line's colour
        colours = {line.get_label(): line.get_color() for line in axis.get_lines()}
        dotted = sorted((line.get_ydata()[0], line.get_color()) for line in axis.get_lines()
                        if line.get_linestyle() == ":" and line.get_ydata()[0] == line.get_ydata()[1])
        baselines = sorted((planted(dataset, "baseline", RHO, "roc_auc") + SHIFT[k], colours[f"{k} minority classes"])
                           for k in (2, 5))
        assert [colour for _, colour in dotted] == [colour for _, colour in baselines]
        assert [y for y, _ in dotted] == pytest.approx([y for y, _ in baselines])
        # x: log, reversed from ρ (left) to 1 (right); y: the metric
        assert axis.get_xscale() == "log"
        left, right = axis.get_xlim()
        assert left > RHO and right < 1
        assert [tick.get_text() for tick in axis.get_xticklabels()] == ["1", "10", "1000"]
        assert "after sampling" in axis.get_xlabel() and axis.get_ylabel() == "ROC AUC"
    colours = [labelled_colour(axes[0], k) for k in (2, 5)]
    assert colours[0] != colours[1]
    assert all(labelled_colour(axis, k) == colours[i] for axis in axes for i, k in enumerate((2, 5)))
    legend = figure.legends[0]
    assert [text.get_text() for text in legend.get_texts()] == ["2 minority classes", "5 minority classes",
                                                                BASELINE_LABEL]


def labelled_colour(axis, n_minority):
    return next(line.get_color() for line in axis.get_lines() if line.get_label() == f"{n_minority} minority classes")


def test_the_per_minority_layout_keeps_a_panel_per_number_of_minority_classes(drawn, table):
    figure, csv = drawn(table, layout="per_minority")
    axes = panels(figure)
    assert [axis.get_title() for axis in axes] == [f"{dataset}: {k} minority classes"
                                                   for dataset in ("cifar", "mnist") for k in (2, 5)]
    for axis, (dataset, n_minority) in zip(axes, [(d, k) for d in ("cifar", "mnist") for k in (2, 5)]):
        lines = labelled(axis)
        assert sorted(lines) == ["baseline (no sampling, ρ = 1000)", "oversampling", "undersampling"]
        for line in ("oversampling", "undersampling"):
            assert_same_line(lines[line], expected_line(csv, dataset, n_minority, line))
        baseline = planted(dataset, "baseline", RHO, "roc_auc") + SHIFT[n_minority]
        assert lines["baseline (no sampling, ρ = 1000)"][1] == pytest.approx([baseline, baseline])
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        "oversampling", "undersampling", "baseline (no sampling, ρ = 1000)"]


def test_the_csv_is_the_same_whatever_the_layout(drawn, table):
    _, paper = drawn(table, "paper", layout="paper")
    _, per_minority = drawn(table, "per_minority", layout="per_minority")
    pd.testing.assert_frame_equal(paper, per_minority)
    assert list(paper.columns) == fig7_module.COLUMNS
    assert len(paper) == 2 * 2 * len(WHICH)  # datasets x numbers of minority classes x points
    for row in paper.itertuples():
        method = WHICH[(row.line, row.imbalance_ratio_after_sampling)]
        assert row.mean == pytest.approx(planted(row.dataset, method, RHO, "roc_auc") + SHIFT[row.n_minority])
        assert row.sd == pytest.approx(0.01) and row.n == len(SEEDS)


def test_a_line_with_its_own_point_at_rho_does_not_start_from_the_baseline(drawn, table):
    """A sampler run at ratio ρ (sampling nothing) is the line's own first point; the baseline stays dotted."""
    own = table[(table["method"] == "over_r10") & (table["rho"] == RHO)].assign(
        method="over_r1000", variant="over_r1000", sampling_ratio=float(RHO))
    own = own.assign(value=own["value"] + 0.1)
    figure, csv = drawn(pd.concat([table, own], ignore_index=True), layout="paper", datasets=["mnist"])
    oversampling, undersampling = panels(figure)
    assert oversampling.get_title() == "(a) Oversampling — mnist"
    for n_minority in (2, 5):
        x, y = labelled(oversampling)[f"{n_minority} minority classes"]
        assert sorted(x) == [1, 10, RHO]
        assert y[np.argmax(x)] == pytest.approx(planted("mnist", "over_r10", RHO, "roc_auc") + 0.1 + SHIFT[n_minority])
        assert_same_line((x, y), expected_line(csv, "mnist", n_minority, "oversampling"))
        x, y = labelled(undersampling)[f"{n_minority} minority classes"]
        assert y[np.argmax(x)] == pytest.approx(planted("mnist", "baseline", RHO, "roc_auc") + SHIFT[n_minority])


def test_the_paper_layout_draws_only_the_samplers_it_has(drawn, table):
    figure, csv = drawn(table, layout="paper", methods=["baseline", "over"], datasets=["cifar"])
    assert [axis.get_title() for axis in panels(figure)] == ["(a) Oversampling — cifar"]
    assert set(csv["line"]) == {"baseline", "oversampling"}


def test_the_layout_is_required_and_checked(tmp_path, table):
    with pytest.raises(FigureSettingsError, match=r"fig7: missing setting\(s\) \['layout'\]"):
        FIGURES["fig7"](table, tmp_path / "a.pdf", tmp_path / "a.csv", rho=RHO, metric="roc_auc")
    with pytest.raises(FigureSettingsError, match=r"fig7: layout 'grid' is not one of \['paper', 'per_minority'\]"):
        FIGURES["fig7"](table, tmp_path / "a.pdf", tmp_path / "a.csv", rho=RHO, metric="roc_auc", layout="grid")
    assert not (tmp_path / "a.pdf").exists()


def config_with_fig7(fig7: dict) -> dict:
    config = copy.deepcopy(shipped())
    config["figures"]["fig7"] = fig7
    study_config.validate(config, SCHEMA)
    return config


def test_the_schema_defaults_the_layout_to_the_papers():
    assert config_with_fig7({})["figures"]["fig7"]["layout"] == "paper"
    assert config_with_fig7({"layout": "per_minority"})["figures"]["fig7"]["layout"] == "per_minority"
    with pytest.raises(study_config.ConfigError, match="figures.fig7.layout: 'grid' is not one of"):
        config_with_fig7({"layout": "grid"})


@pytest.mark.parametrize("layout, says, not_says", [
    ("paper", "(a) oversampling and (b) undersampling", "One panel per number of minority classes"),
    ("per_minority", "One panel per number of minority classes", "(a) oversampling"),
])
def test_the_caption_describes_the_layout(layout, says, not_says):
    rho = max(shipped()["study"]["profiles"]["step"]["rho"])
    fig7 = {"rho": rho} if layout == "paper" else {"rho": rho, "layout": layout}  # the paper's by default
    figure_plan = catalog.plan_figures(plan.resolve(config_with_fig7(fig7)))["fig7"]
    assert figure_plan.settings["layout"] == layout and figure_plan.runs
    assert says in figure_plan.caption and not_says not in figure_plan.caption
    assert f"ρ = {rho:g}" in figure_plan.caption
