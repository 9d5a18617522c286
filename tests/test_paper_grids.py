"""The paper's grids, shipped as study configs: the counts of the paper, checked from the config and
from what Snakemake would run."""

import numpy as np
import pytest
import yaml

from imbalance_study import config as study_config, plan, sampling, source_facts
from imbalance_study.figures.catalog import plan_figures

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


def test_cifar10_config_runs_as_the_paper_ran():
    """Xavier initialisation, a pool of 5,000 per class and no validation split, selection on the test
    set, two repeats of the same imbalanced set, the last two convolutions fine-tuned, and Figure 8 at
    5 minority classes and rho = 50: what the jobs receive (the dataset job's content settings, each
    training job's runs as Run.to_dict gives them to it)."""
    study = grid("paper_cifar10.yaml")
    content = source_facts.content_settings(study.datasets["cifar10"].settings)
    assert (content["train_per_class"], content["validation_per_class"], content["split"]) == (5000, 0, "official")
    members = [plan.Run.from_dict(run.to_dict()) for run in study.runs]
    assert {json_key(run.model_options) for run in members} == {json_key({"init": "caffe_xavier"})}
    assert {(run.method.select_on, run.method.select_metric) for run in members} == {("test", "roc_auc")}
    assert {run.method.fine_tuned for run in members if run.method.two_phase} == {("conv8", "conv9")}
    assert {cell.repeats for cell in study.cells} == {"same_data"}
    assert all(len(set(cell.data_seeds().values())) == 1 for cell in study.cells)
    assert len({run.init_seed() for run in members if run.profile.name == "step-mu0.5-rho50"
                and run.method.variant == "baseline-lr0.05"}) == 2  # repeats differ in their initial weights
    fig8 = plan_figures(study)["fig8"]
    assert fig8.settings["profile"] == "step-mu0.5-rho50"
    assert {run.method.name for run in fig8.runs} == {"baseline", "over", "under"}


def test_cifar10_validated_config_selects_on_a_validation_split():
    study = grid("cifar10_validated.yaml")
    content = source_facts.content_settings(study.datasets["cifar10"].settings)
    assert (content["train_per_class"], content["validation_per_class"]) == (4500, 500)
    assert {run.method.select_on for run in study.runs} == {"validation"}
    assert {json_key(run.model_options) for run in study.runs} == {json_key({"init": "caffe_xavier"})}
    assert {cell.repeats for cell in study.cells} == {"new_data"} and len(study.runs) == 640


def test_cifar10_appendix_config_draws_three_reshuffled_splits():
    study = grid("paper_cifar10_appendix.yaml")
    splits = {name: source_facts.content_settings(dataset.settings) for name, dataset in study.datasets.items()}
    assert {(spec["split"], spec["seed"], spec["train_per_class"], spec["test_per_class"])
            for spec in splits.values()} == {("pooled", seed, 5000, 1000) for seed in (1, 2, 3)}
    # The splits differ only in their seed, so their dataset files differ only through it.
    assert len({json_key({**spec, "seed": 0}) for spec in splits.values()}) == 1
    assert len(study.runs) == 3 * 12 * 5 * 4 * 2


def json_key(value) -> str:
    return yaml.safe_dump(value, sort_keys=True)


@pytest.mark.parametrize("repeats", ["same_data", "new_data"])
def test_repeats_of_the_same_data_share_their_index_files_byte_for_byte(tmp_path, repeats):
    config = yaml.safe_load((REPO / "configs" / "paper_cifar10.yaml").read_text())
    config["study"].update(repeats=repeats, seeds=[1, 2, 3])
    config["methods"]["partial"] = {"sampler": "over", "ratio": 10}
    config["study"]["methods"].append("partial")
    study_config.validate(config, SCHEMA)
    cell = plan.resolve(config).cell("cifar10", "step-mu0.5-rho20")
    pool_labels = np.repeat(np.arange(10), 60)
    paths = {seed: {name: tmp_path / seed / f"{name}.npy" for name in files}
             for seed, files in cell.index_paths().items()}
    manifest = sampling.write_index_files(pool_labels, cell.profile, 60, cell.data_seeds(), "random",
                                          cell.index_files, paths, cell.context)
    assert [index.name for index in cell.index_files] == ["imbalanced", "over", "under", "over-ratio10"]
    for index in cell.index_files:
        contents = {paths[seed][index.name].read_bytes() for seed in manifest}
        # same_data: one file's bytes for every repeat; new_data: each repeat draws its own.
        assert len(contents) == (1 if repeats == "same_data" else 3), index.name


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
    # 16 sets x 8 protocols (4 learning rates, one or two phases): 6 or 4 runs per job; Figure 8 too.
    ("paper_cifar10.yaml", {},
     {"prepare_dataset": 1, "indices": 16, "train_bundle": 128, "aggregate_scores": 1, "figure": 5, "provenance": 1,
      "all": 1}),
    ("cifar10_validated.yaml", {},
     {"prepare_dataset": 1, "indices": 16, "train_bundle": 128, "aggregate_scores": 1, "figure": 5, "provenance": 1,
      "all": 1}),
    # Three splits (datasets) x 12 step sets x 8 protocols.
    ("paper_cifar10_appendix.yaml", {},
     {"prepare_dataset": 3, "indices": 36, "train_bundle": 288, "aggregate_scores": 1, "figure": 2, "provenance": 1,
      "all": 1}),
    ("paper_imagenet.yaml", {},
     {"prepare_dataset": 1, "indices": 3, "train_bundle": 15, "aggregate_scores": 1, "figure": 1, "provenance": 1,
      "all": 1}),
])
def test_dry_run_plans_the_papers_jobs(tmp_path, name, overrides, expected):
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    output = snakemake(tmp_path, "-n", configfiles=[REPO / "configs" / name, tmp_path / "overrides.yaml"])
    assert planned_jobs(output) == expected


@pytest.mark.parametrize(("name", "middle"), [("paper_cifar10.yaml", "step-mu0.5-rho20"),
                                              ("paper_mnist.yaml", "step-mu0.5-rho250"),
                                              ("paper_imagenet.yaml", "step-mu0.8-rho50")])
def test_figure_8_without_a_profile_draws_the_middle_of_the_grid_and_says_so(name, middle):
    config = yaml.safe_load((REPO / "configs" / name).read_text())
    config["figures"]["fig8"] = {}
    config["scoring"]["splits"] = ["test", "train"]
    study_config.validate(config, SCHEMA)
    fig8 = plan_figures(plan.resolve(config))["fig8"]
    assert fig8.settings["profile"] == middle
    assert {run.profile.name for run in fig8.runs} == {middle}
    assert f"``{middle}`` (chosen as the middle of the step grid" in fig8.caption


@pytest.mark.workflow
def test_the_indices_rule_draws_repeats_of_the_same_data_once(tmp_path):
    """study.repeats reaches the indices job: with same_data its two seeds' files are byte for byte
    the same; switched to new_data the job runs again and they differ."""
    import copy

    from .test_workflow import TINY

    config = copy.deepcopy(TINY)
    config["study"].update(seeds=[1, 2], repeats="same_data")
    target = "results/indices/digits/step-mu0.5-rho10/indices.json"
    folder = tmp_path / "results" / "indices" / "digits" / "step-mu0.5-rho10"
    contents = {}
    for repeats in ("same_data", "new_data"):
        config["study"]["repeats"] = repeats
        snakemake(tmp_path, target, config=config)
        contents[repeats] = {name: {(folder / f"seed{seed}" / f"{name}.npy").read_bytes() for seed in (1, 2)}
                             for name in ("imbalanced", "over", "under")}
    assert all(len(files) == 1 for files in contents["same_data"].values())
    assert all(len(files) == 2 for files in contents["new_data"].values())
