"""The workflow end to end on the other dataset kinds, each from a tiny fixture in its real format:
CIFAR-10 (torchvision's on-disk batches, GCN + ZCA, All-CNN-C, a learning-rate search selected on a
validation split), an ImageNet-style image folder (ResNet-10, crops decoded per batch, a class short
of the cap) and scikit-learn's breast-cancer table (an MLP)."""

import json

import pandas as pd
import pytest

from .fixtures import write_cifar10_fixture, write_image_folder_fixture
from .test_workflow import snakemake

pytestmark = pytest.mark.workflow

SMALL = {"iterations": 30, "batch_size": 8, "lr": 0.01, "checkpoints": [10, 30], "momentum": 0.9}


def study_config(tmp_path):
    write_cifar10_fixture(tmp_path / "cifar", per_class_train=12, per_class_test=4)
    # Class 3 has 9 training images, fewer than the cap of 10: it is always a minority class.
    write_image_folder_fixture(tmp_path / "folder" / "train", 4, [14, 14, 14, 9], size=44)
    write_image_folder_fixture(tmp_path / "folder" / "val", 4, 3, size=44, seed=1)
    return {
        "datasets": {
            "cifar": {"source": "torchvision_cifar10", "root": str(tmp_path / "cifar"), "train_per_class": 8,
                      "validation_per_class": 2, "test_per_class": 4, "minority_classes": "lowest",
                      "model": "allcnn_c", "protocol": "searched"},
            "folder": {"source": "image_folder", "train_root": str(tmp_path / "folder" / "train"),
                       "test_root": str(tmp_path / "folder" / "val"), "train_per_class": 10, "test_per_class": 3,
                       "image_size": {"resize": 36, "crop": 32}, "model": "resnet10", "protocol": "small"},
            "cancer": {"source": "sklearn_breast_cancer", "train_per_class": 100, "test_per_class": 50,
                       "model": "mlp", "model_options": {"hidden": [16]}, "protocol": "small"},
        },
        "protocols": {"small": SMALL,
                      "searched": {**SMALL, "lr_search": {"values": [0.01, 0.001], "select_on": "validation"}}},
        "methods": {"baseline": {"sampler": "none"}, "over": {"sampler": "over"},
                    "twophase_over": {"two_phase": {"from": "over"}}},
        "study": {"datasets": ["cifar", "folder", "cancer"], "seeds": [1],
                  "methods": ["baseline", "over", "twophase_over"],
                  "profiles": {"step": {"mu": [0.5], "rho": [4]}}},
        "figures": {"table4": {}},
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sources")
    snakemake(workdir, config=study_config(workdir))
    return workdir


def test_every_kind_trains_scores_and_fills_table4(finished):
    table = pd.read_csv(finished / "results" / "scores.csv")
    assert set(table["dataset"]) == {"cifar", "folder", "cancer"}
    final = table[(table["iteration"] == 30) & (table["metric"] == "roc_auc") & ~table["thresholded"]
                  & (table["split"] == "test") & table["selected"]]
    assert final.groupby("dataset")["method"].nunique().to_dict() == {"cifar": 3, "folder": 3, "cancer": 3}
    table4 = pd.read_csv(finished / "figures" / "table4.csv")
    assert set(table4["dataset"]) == {"cifar", "folder", "cancer"}
    assert (finished / "figures" / "table4.pdf").read_bytes().startswith(b"%PDF")


def test_the_learning_rate_search_keeps_one_run_per_method_chosen_on_validation(finished):
    table = pd.read_csv(finished / "results" / "scores.csv")
    cifar = table[table["dataset"] == "cifar"]
    assert set(cifar["variant"]) == {f"{m}-lr{lr}" for m in ("baseline", "over", "twophase_over") for lr in (0.01, 0.001)}
    assert set(cifar["split"]) == {"train", "validation", "test"} and set(cifar["select_on"]) == {"validation"}
    kept = cifar[cifar["selected"]].groupby("method")["variant"].nunique()
    assert kept.to_dict() == {"baseline": 1, "over": 1, "twophase_over": 1}
    # The second phase starts from the first phase at the same learning rate, fine-tuned at a tenth.
    run = json.loads((finished / "results/runs/cifar/step-mu0.5-rho4/seed1/twophase_over-lr0.01/run.json").read_text())
    assert run["spec"]["protocol"]["lr"] == pytest.approx(0.001) and run["trained_layers"] == ["conv8", "conv9"]


def test_the_image_folder_keeps_its_short_class_as_a_minority(finished):
    table = pd.read_csv(finished / "results" / "scores.csv")
    recall = table[(table["dataset"] == "folder") & (table["metric"] == "recall") & (table["class"] >= 0)]
    assert recall[recall["class"] == 3]["group"].eq("minority").all()
