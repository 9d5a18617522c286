"""The learning-dynamics effect on the default digits study: at a strong imbalance, the baseline
first learns only the majority classes, then memorises its few minority examples without
generalising to the test set."""

import pandas as pd
import pytest
import yaml

from imbalance_study import figures

from .conftest import REPO
from .test_workflow import snakemake

pytestmark = pytest.mark.workflow
PROFILE = "step-mu0.2-rho100"  # the study's only profile, so the one the dynamics figure shows


@pytest.fixture(scope="module")
def strongest_imbalance(tmp_path_factory):
    """config.yaml as it is (data, model, protocol, seeds), narrowed to its strongest imbalance
    (2 minority classes, rho 100) and the baseline: one job of two runs. Only the score table is
    built here; the figure is drawn by its own test."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["study"]["methods"] = ["baseline"]
    config["study"]["profiles"] = {"step": {"mu": [0.2], "rho": [100]}}
    config["figures"] = {"dynamics": {}}
    workdir = tmp_path_factory.mktemp("dynamics")
    snakemake(workdir, "results/scores.csv", config=config)
    table = pd.read_csv(workdir / "results" / "scores.csv")
    groups = table[(table["metric"] == "recall") & (table["class"] == -1) & ~table["thresholded"]]
    return workdir, groups.pivot_table(index=["seed", "iteration"], columns=["split", "group"], values="value")


def test_minority_test_recall_lies_far_below_the_majoritys_at_the_end(strongest_imbalance):
    _, recall = strongest_imbalance
    last = recall.xs(recall.index.get_level_values("iteration").max(), level="iteration")
    assert len(last) == 2  # both seeds of the default study
    for seed, row in last.iterrows():
        assert row[("test", "minority")] < row[("test", "majority")] - 0.3, (seed, row)
        # Memorised: the minority training examples are all recognised, the test examples are not.
        assert row[("train", "minority")] >= 0.95, (seed, row)
        assert row[("train", "minority")] - row[("test", "minority")] > 0.5, (seed, row)


def test_the_minority_classes_are_learnt_late(strongest_imbalance):
    """When the network already recognises 90% of its majority training examples, it still
    recognises almost none of its minority ones (underfitting the minority early on)."""
    _, recall = strongest_imbalance
    for seed, by_iteration in recall.groupby(level="seed"):
        learnt = by_iteration[by_iteration[("train", "majority")] >= 0.9]
        assert len(learnt), f"seed {seed}: the majority classes were never learnt"
        first = learnt.iloc[0]
        assert first[("train", "minority")] <= 0.1, (seed, by_iteration)


def draw_dynamics(workdir, directory):
    """The dynamics figure drawn straight from the study's score table; its CSV, read back."""
    table = figures.load_scores(workdir / "results" / "scores.csv")
    figures.FIGURES["dynamics"](table, directory / "dynamics.pdf", directory / "dynamics.csv", profile=PROFILE)
    assert (directory / "dynamics.pdf").read_bytes().startswith(b"%PDF")
    return pd.read_csv(directory / "dynamics.csv")


def test_the_dynamics_csv_holds_the_recall_curves_and_the_gap(strongest_imbalance, tmp_path):
    """The figure's CSV: per split, group and checkpoint, the recall averaged over both seeds, and the
    generalisation gap (train minus test), far larger for the memorised minority classes."""
    workdir, recall = strongest_imbalance
    drawn = draw_dynamics(workdir, tmp_path)
    assert set(drawn["profile"]) == {PROFILE} and set(drawn["method"]) == {"baseline"}
    assert {"recall", "generalisation_gap"} <= set(drawn["quantity"]) <= {"recall", "generalisation_gap", "silhouette"}
    curves = drawn[drawn["quantity"] == "recall"].set_index(["split", "group", "iteration"])
    iterations = sorted(recall.index.get_level_values("iteration").unique())
    assert len(curves) == 2 * 2 * len(iterations) and (curves["n"] == 2).all()  # both seeds
    for split in ("train", "test"):
        for group in ("majority", "minority"):
            by_seed = recall[(split, group)].unstack("seed")
            for iteration in iterations:
                row = curves.loc[(split, group, iteration)]
                assert row["mean"] == pytest.approx(by_seed.loc[iteration].mean())
                assert row["sd"] == pytest.approx(by_seed.loc[iteration].std())
    gap = drawn[drawn["quantity"] == "generalisation_gap"].set_index(["group", "iteration"])
    assert set(drawn.loc[drawn["quantity"] == "generalisation_gap", "split"]) == {"train-test"}
    last = iterations[-1]
    for group in ("majority", "minority"):
        per_seed = recall[("train", group)] - recall[("test", group)]
        assert gap.loc[(group, last), "mean"] == pytest.approx(per_seed.xs(last, level="iteration").mean())
    assert gap.loc[("minority", last), "mean"] > 0.5 > gap.loc[("majority", last), "mean"]


def test_the_dynamics_figure_is_drawn(strongest_imbalance, tmp_path):
    """The workflow draws figures/dynamics.pdf and, beside it, the numbers it draws."""
    workdir, _ = strongest_imbalance
    snakemake(workdir)
    assert (workdir / "figures" / "dynamics.pdf").read_bytes().startswith(b"%PDF")
    written = pd.read_csv(workdir / "figures" / "dynamics.csv")
    pd.testing.assert_frame_equal(written, draw_dynamics(workdir, tmp_path))
