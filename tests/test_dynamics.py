"""The learning-dynamics effect on the default digits study: at a strong imbalance, the baseline
first learns only the majority classes, then memorises its few minority examples without
generalising to the test set."""

import pandas as pd
import pytest
import yaml

from .conftest import REPO
from .test_workflow import snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def strongest_imbalance(tmp_path_factory):
    """config.yaml as it is (data, model, protocol, seeds), narrowed to its strongest imbalance
    (2 minority classes, rho 100) and the baseline: one job of two runs."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["study"]["methods"] = ["baseline"]
    config["study"]["profiles"] = {"step": {"mu": [0.2], "rho": [100]}}
    config["figures"] = {"dynamics": {}}
    workdir = tmp_path_factory.mktemp("dynamics")
    snakemake(workdir, config=config)
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


def test_the_dynamics_figure_is_drawn(strongest_imbalance):
    workdir, _ = strongest_imbalance
    assert (workdir / "figures" / "dynamics.pdf").read_bytes().startswith(b"%PDF")
