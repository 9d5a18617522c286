"""Real MNIST, from the official files (../shared/data), through torchvision: no network."""

import json

import h5py
import numpy as np
import pytest
import torch

from imbalance_study import datasets, imbalance, metrics, models, plan, rundir, scoring, training
from imbalance_study.batches import TensorBatches
from imbalance_study.loop import Trainee
from imbalance_study.protocol import Protocol
from imbalance_study.sampling import IMBALANCED

from .fixtures import dataset_settings

pytestmark = pytest.mark.mnist


@pytest.fixture(scope="module")
def mnist_file(tmp_path_factory, mnist_files):
    folder = tmp_path_factory.mktemp("mnist")
    spec = {"source": "torchvision_mnist", "root": str(folder / "torchvision"), "copy_from": str(mnist_files),
            "train_per_class": 5000, "test_per_class": 800, "seed": 0}
    datasets.prepare("mnist", dataset_settings(spec), folder / "mnist.h5")
    return folder / "mnist.h5"


def test_mnist_pool_follows_the_papers_caps(mnist_file):
    dataset = datasets.load(mnist_file)
    assert np.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert np.bincount(dataset.test_labels).tolist() == [800] * 10
    assert dataset.image_shape == (28, 28)
    with h5py.File(mnist_file) as handle:
        provenance = json.loads(handle.attrs["provenance"])
    assert provenance["files_md5"]["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"


def test_lenet5_with_the_papers_protocol_learns_mnist(mnist_file, tmp_path):
    dataset = datasets.load(mnist_file)
    profile = imbalance.step(0.2, 10)
    indices = imbalance.imbalanced_indices(dataset.train_labels, profile, 5000, seed=1)
    protocol = Protocol.from_config({
        "iterations": 300, "batch_size": 64, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
        "lr_policy": {"name": "inv", "gamma": 1e-4, "power": 0.75}, "checkpoints": [300], "momentum_form": "caffe",
        "resume_every": 300, "precision": "fp32"})
    method = plan.Method(name="baseline", variant="baseline", sampler="none", ratio=1.0, index=IMBALANCED,
                         protocol=protocol, base_lr=0.01)
    torch.set_num_threads(2)
    manifest = training.train(Trainee(plan.Run("mnist", profile, 1, method, "lenet5"), indices, tmp_path),
                              TensorBatches(dataset.train_images, dataset.train_labels, torch.device("cpu")), 10,
                              device="cpu")
    model = models.build("lenet5", 10, dataset.image_shape)
    rundir.load_checkpoint(manifest["checkpoints"][0], model, manifest["fingerprint"])
    log_probs = scoring.log_probabilities(model, models.to_input(torch.from_numpy(dataset.test_images)))
    assert np.mean(log_probs.argmax(1) == dataset.test_labels) > 0.9
    assert metrics.multiclass_auc(dataset.test_labels, log_probs) > 0.98
