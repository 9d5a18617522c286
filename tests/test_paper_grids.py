"""The paper's grids, shipped as study configs: the counts of the paper, checked from the config and
from what Snakemake would run."""

import pytest
import yaml

from imbalance_study import config as study_config, plan

from .conftest import REPO
from .test_workflow import planned_jobs, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def grid(name) -> plan.Study:
    config = yaml.safe_load((REPO / "configs" / name).read_text())
    study_config.validate(config, SCHEMA)
    return plan.resolve(config)


def imbalanced_sets(study, kind):
    return sum(len(cell.seeds) for cell in study.cells if cell.profile.kind == kind)


def test_mnist_grid_is_the_papers_22500_networks():
    study = grid("paper_mnist.yaml")
    assert imbalanced_sets(study, "step") == 4050 and imbalanced_sets(study, "linear") == 450
    runs = study.runs
    assert len(runs) == 22_500 and len({run.key for run in runs}) == 22_500
    assert {run.method.variant for run in runs} == {"baseline", "over", "under", "twophase_over", "twophase_under"}


def test_cifar10_grid_is_the_papers_640_networks():
    study = grid("paper_cifar10.yaml")
    assert imbalanced_sets(study, "step") == 12 * 2 and imbalanced_sets(study, "linear") == 4 * 2
    runs = study.runs
    assert len(runs) == 640
    assert {run.method.variant for run in runs if run.method.name == "over"} == {
        "over-lr0.05", "over-lr0.005", "over-lr0.0005", "over-lr0.00005"}
    # 5 methods x 4 learning rates x 2 repeats per imbalanced set, the best of 8 kept per method.
    per_set = {}
    for run in runs:
        per_set.setdefault((run.profile, run.method.name), []).append(run)
    assert len(per_set) == 16 * 5 and all(len(group) == 8 for group in per_set.values())


def test_imagenet_grid_is_the_papers_15_networks():
    study = grid("paper_imagenet.yaml")
    assert len(study.runs) == 15
    repeats = {cell.profile.name: len(cell.seeds) for cell in study.cells}
    assert repeats == {"step-mu0.1-rho10": 1, "step-mu0.8-rho50": 1, "step-mu0.9-rho100": 3}


def test_partial_sampling_config_feeds_fig7():
    study = grid("paper_mnist_partial.yaml")
    ratios = {(run.method.sampler, run.method.ratio) for run in study.runs}
    assert ratios == {("none", 1), *((s, r) for s in ("over", "under") for r in (1, 500, 100, 10))}


@pytest.mark.workflow
@pytest.mark.parametrize(("name", "overrides", "expected"), [
    # The whole MNIST grid, 22,500 networks: 90 profiles, each with 3 jobs of 50 one-phase runs and
    # 2 jobs of 50 two-phase runs (engine.runs_per_job: 64).
    ("paper_mnist.yaml", {},
     {"prepare_dataset": 1, "indices": 90, "train_bundle": 450, "aggregate_scores": 1, "figure": 5, "provenance": 1,
      "all": 1}),
    # 16 sets x 8 protocols (4 learning rates, one or two phases): 6 or 4 runs per job.
    ("paper_cifar10.yaml", {},
     {"prepare_dataset": 1, "indices": 16, "train_bundle": 128, "aggregate_scores": 1, "figure": 4, "provenance": 1,
      "all": 1}),
    ("paper_imagenet.yaml", {},
     {"prepare_dataset": 1, "indices": 3, "train_bundle": 15, "aggregate_scores": 1, "figure": 1, "provenance": 1,
      "all": 1}),
])
def test_dry_run_plans_the_papers_jobs(tmp_path, name, overrides, expected):
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    output = snakemake(tmp_path, "-n", configfiles=[REPO / "configs" / name, tmp_path / "overrides.yaml"])
    assert planned_jobs(output) == expected
