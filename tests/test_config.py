import copy

import pytest
import yaml

from imbalance_study import config as study_config, plan

from .conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def shipped(name="config.yaml"):
    return yaml.safe_load((REPO / name).read_text())


def test_the_shipped_config_is_valid_and_gets_defaults():
    config = shipped()
    study_config.validate(config, SCHEMA)
    assert config["datasets"]["digits"]["seed"] == 0
    assert config["methods"]["over"]["ratio"] == 1
    assert len(plan.resolve(config).runs) == 3 * 3 * 2 * 10  # profiles x seeds x methods


def test_the_mnist_config_layered_over_the_default_is_valid():
    config = shipped()
    config.update(shipped("configs/mnist_reduced.yaml"))
    study_config.validate(config, SCHEMA)
    assert {run.dataset for run in plan.resolve(config).runs} == {"mnist"}


def broken(path, value):
    """The shipped config with the key at ``path`` (dots) set to ``value`` (or removed, for DELETE).

    The shipped config gains a well-formed two-phase method, ``twophase`` (from ``over``), first.
    """
    config = copy.deepcopy(shipped())
    config["methods"]["twophase"] = {"two_phase": {"from": "over"}}
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


DELETE = object()

MALFORMED = [
    ("datasets.digits.train_per_class", -5, "datasets.digits.train_per_class: -5 is less than the minimum of 1"),
    ("datasets.digits.train_per_class", 150, "train_per_class + test_per_class = 200"),
    ("datasets.digits.source", "imagenet", "datasets.digits.source: 'imagenet' is not one of"),
    ("datasets.digits.minority_classes", "highest", "datasets.digits.minority_classes: 'highest' is not one of"),
    ("datasets.digits.model", "resnet", "datasets.digits.model: 'resnet' is not one of"),
    ("datasets.digits.protocol", "cifar", "datasets.digits.protocol: 'cifar' is not among protocols"),
    ("datasets.digits.model", DELETE, "datasets.digits: 'model' is a required property"),
    ("protocols.digits.iterations", 0, "protocols.digits.iterations: 0 is less than the minimum of 1"),
    ("protocols.digits.lr", "fast", "protocols.digits.lr: 'fast' is not of type 'number'"),
    ("protocols.digits.checkpoints", [100, 5000], "protocols.digits: checkpoints [5000] lie outside 1..1500"),
    ("protocols.digits.lr_policy", {"name": "cosine"}, "protocols.digits.lr_policy.name: 'cosine' is not one of"),
    ("protocols.digits.momentum_form", "keras", "protocols.digits.momentum_form: 'keras' is not one of"),
    ("methods.over.sampler", "smote", "methods.over.sampler: 'smote' is not one of"),
    ("methods.over.ratio", 0.5, "methods.over.ratio: 0.5 is less than the minimum of 1"),
    ("methods.over.train", {"checkpoints": [99999]}, "methods.over.train: checkpoints [99999] lie outside"),
    ("study.methods", ["baseline", "smote"], "study.methods[1]: 'smote' is not among methods"),
    ("study.datasets", ["cifar10"], "study.datasets[0]: 'cifar10' is not among datasets"),
    ("study.seeds", [1, 1], "study.seeds: [1, 1] has non-unique elements"),
    ("study.profiles.step.mu", [0.25], "study.profiles.step.mu[0]: mu=0.25 times 10 classes is 2.5"),
    ("study.profiles.step.rho", [0.5], "study.profiles.step.rho[0]: 0.5 is less than the minimum of 1"),
    ("study.profiles.step.mu", [1.5], "study.profiles.step.mu[0]: 1.5 is greater than the maximum of 1"),
    ("study.profiles", {}, "study.profiles: {} should be non-empty"),
    ("device", "tpu", "device: 'tpu' does not match"),
    ("figures.fig3.methods", ["smote"], "figures.fig3.methods[0]: 'smote' is not among study.methods"),
    ("study.typo", 1, "study: Additional properties are not allowed ('typo' was unexpected)"),
    ("methods.baseline", {"two_phase": {"from": "smote"}}, "methods.baseline.two_phase.from: 'smote' is not among"),
    ("methods.baseline", {"two_phase": {"from": "baseline"}},
     "methods.baseline.two_phase.from: 'baseline' must be a one-phase method with a sampler"),
    ("methods.baseline", {"two_phase": {"from": "over", "lr_factor": 0}},
     "methods.baseline.two_phase.lr_factor: 0 is less than or equal to the minimum of 0"),
    ("methods.baseline", {"sampler": "under", "two_phase": {"from": "over"}},
     "methods.baseline.sampler: a two-phase method fine-tunes on the imbalanced set"),
    ("study.methods", ["baseline", "under", "twophase"], "methods.twophase.two_phase.from: 'over' must also be in study.methods"),
    ("protocols.digits.lr_search", {"values": [0.1, 0.01]},
     "datasets.digits.validation_per_class: the learning-rate search of method 'baseline' selects on a validation split"),
    ("protocols.digits.lr_search", {"values": [], "select_on": "test"}, "protocols.digits.lr_search.values: [] should be non-empty"),
    ("protocols.digits.lr_policy", {"name": "poly", "power": -1}, "protocols.digits.lr_policy.power: -1 is less than"),
    ("study.profiles.linear", {"rho": [0.5]}, "study.profiles.linear.rho[0]: 0.5 is less than the minimum of 1"),
    ("study.profiles.step", [{"mu": [0.2], "rho": [10]}, {"mu": [0.25], "rho": [5]}],
     "study.profiles.step[1].mu[0]: mu=0.25 times 10 classes is 2.5"),
    ("study.profiles.exponential", {"rho": [10], "seeds": [-1]}, "study.profiles.exponential.seeds[0]: -1 is less than"),
    ("datasets.digits.validation_per_class", 60, "validation_per_class + test_per_class = 230"),
    ("datasets.digits.source", "csv", "datasets.digits.path: required for source csv"),
    ("scoring.splits", ["holdout"], "scoring.splits[0]: 'holdout' is not one of"),
    ("figures.fig7", {"rho": 0}, "figures.fig7.rho: 0 is less than the minimum of 1"),
    # A figure's settings are checked with the config, before any job runs.
    ("figures.fig3", {"rho": 10}, "figures.fig3: Additional properties are not allowed ('rho' was unexpected)"),
    ("figures.fig8", {"profile": "step-mu0.5-rho7"},
     "figures.fig8.profile: 'step-mu0.5-rho7' is not a profile of this study"),
    ("figures.dynamics", {"datasets": ["mnist"]}, "figures.dynamics.datasets[0]: 'mnist' is not among study.datasets"),
    ("scoring.splits", ["test"], "figures.fig8: draws the train split, which scoring.splits leaves out"),
    # What a learning-rate policy needs, and a method's overrides, checked with the schema.
    ("protocols.digits.lr_policy", {"name": "inv"}, "protocols.digits.lr_policy: 'gamma' is a required property"),
    ("protocols.digits.lr_policy", {"name": "multistep"},
     "protocols.digits.lr_policy: 'steps' is a required property"),
    ("methods.over.train", {"weight_decy": 0.1},
     "methods.over.train: Additional properties are not allowed ('weight_decy' was unexpected)"),
    ("methods.over.train", {"lr_policy": {"name": "inv", "gamma": 0.1}},
     "methods.over.train.lr_policy: 'power' is a required property"),
    ("study.profiles.step.rho", [float("inf")], "study.profiles.step.rho[0]: inf is not a finite number"),
]


@pytest.mark.parametrize(("path", "value", "message"), MALFORMED, ids=[m[0] + "=" + repr(m[1]) for m in MALFORMED])
def test_malformed_configs_are_rejected_naming_the_key(path, value, message):
    with pytest.raises(study_config.ConfigError) as error:
        study_config.validate(broken(path, value), SCHEMA)
    assert message in str(error.value)


def test_the_validator_knows_every_model_without_importing_torch():
    import subprocess
    import sys

    from imbalance_study import models

    assert sorted(study_config.MODELS) == sorted(models.MODELS)
    # Snakemake checks the config in every job's process: it must not import PyTorch for it.
    probe = ("import sys; from imbalance_study import config, datasets, figures, imbalance, plan, sampling; "
             "from imbalance_study.figures import catalog; "
             "print([m for m in ('torch', 'pandas', 'matplotlib', 'sklearn') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO / "src")}, check=True)
    assert result.stdout.strip() == "[]"


def test_a_two_phase_method_needs_the_learning_rates_its_first_phase_trains():
    config = broken("methods.over", {"sampler": "over", "train": {"lr_search": {"values": [0.1, 0.01],
                                                                                "select_on": "test"}}})
    config["study"]["methods"].append("twophase")
    with pytest.raises(study_config.ConfigError, match=r"methods.twophase.two_phase.from: 'twophase' starts from runs "
                                                r"\['over'\] on dataset 'digits', which 'over' does not train"):
        study_config.validate(config, SCHEMA)
    # The same search on both (through the shared protocol) is fine: over-lr0.1 -> twophase-lr0.1.
    config = broken("protocols.digits.lr_search", {"values": [0.1, 0.01], "select_on": "test"})
    config["study"]["methods"].append("twophase")
    study_config.validate(config, SCHEMA)
    assert {bundle.after for bundle in plan.resolve(config).bundles if bundle.after}


def test_a_search_must_score_the_split_it_selects_on():
    config = broken("protocols.digits.lr_search", {"values": [0.1, 0.01], "select_on": "test"})
    config["scoring"] = {"splits": ["train"]}
    with pytest.raises(study_config.ConfigError, match="scoring.splits: the learning-rate search of method 'baseline' "
                                                        "selects on the test split, which is not scored"):
        study_config.validate(config, SCHEMA)


def test_every_problem_is_listed_even_with_a_broken_reference():
    config = broken("datasets.digits.protocol", "cifar")
    config["figures"]["fig8"]["profile"] = "step-mu0.5-rho7"
    with pytest.raises(study_config.ConfigError) as error:
        study_config.validate(config, SCHEMA)
    assert "datasets.digits.protocol: 'cifar' is not among protocols" in str(error.value)
    assert "figures.fig8.profile: 'step-mu0.5-rho7' is not a profile of this study" in str(error.value)


def test_policy_defaults_come_from_the_schema():
    config = broken("protocols.digits.lr_policy", {"name": "poly"})
    config["methods"]["over"]["train"] = {"lr_policy": {"name": "multistep", "steps": [100]}}
    study_config.validate(config, SCHEMA)
    assert config["protocols"]["digits"]["lr_policy"] == {"name": "poly", "power": 1.0, "warmup": 0}
    assert config["methods"]["over"]["train"]["lr_policy"] == {"name": "multistep", "steps": [100], "gamma": 0.1,
                                                               "warmup": 0}
    assert "momentum" not in config["methods"]["over"]["train"]  # overrides get no defaults of their own


def test_an_image_folder_crop_must_fit_its_resize(tmp_path):
    config = broken("datasets.digits", {"source": "image_folder", "train_root": str(tmp_path), "n_classes": 10,
                                        "train_per_class": 5, "test_per_class": 2, "model": "resnet10",
                                        "protocol": "digits", "image_size": {"resize": 200}})
    with pytest.raises(study_config.ConfigError, match="datasets.digits.image_size: crop 224 is larger than the "
                                                       "resized shorter side 200"):
        study_config.validate(config, SCHEMA)


def test_a_second_phase_naming_a_layer_the_model_lacks_is_refused_before_any_job():
    """Checked against the model itself (built on the meta device), not at the second phase's job."""
    settings = yaml.safe_load((REPO / "configs" / "paper_cifar10.yaml").read_text())
    study_config.validate(copy.deepcopy(settings))  # conv8 and conv9 are All-CNN-C's
    settings["methods"]["twophase_over"]["two_phase"]["layers"] = ["conv9", "fc2"]
    with pytest.raises(study_config.ConfigError, match="twophase_over.two_phase.layers: model allcnn_c of dataset "
                                                       "'cifar10' has no layer fc2; its layers are input_dropout, conv1"):
        study_config.validate(settings)
