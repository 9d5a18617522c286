"""What each dataset source is, known before any data is read: what it offers (classes, the smallest
class of its splits), what a config must name for it, and which settings the content of its prepared
file depends on (``content_settings``: the dataset rule's params, so nothing else rebuilds it)."""

from __future__ import annotations

from pathlib import Path

# What each source offers, known before anything is downloaded, so a config can be checked at once.
# max_per_class: the smallest class of both splits together (what a pooled split draws from).
SOURCE_FACTS = {
    "sklearn_digits": {"n_classes": 10, "max_per_class": 174},
    "torchvision_mnist": {"n_classes": 10, "max_per_class": 6313, "max_train_per_class": 5421,
                          "max_test_per_class": 892},
    "torchvision_fashion_mnist": {"n_classes": 10, "max_per_class": 7000, "max_train_per_class": 6000,
                                  "max_test_per_class": 1000},
    "torchvision_cifar10": {"n_classes": 10, "max_per_class": 6000, "max_train_per_class": 5000,
                            "max_test_per_class": 1000},
    "sklearn_breast_cancer": {"n_classes": 2, "max_per_class": 212},
}
# Sources whose facts come from the user's files: what a config must name for each.
REQUIRED_KEYS = {"torchvision_mnist": ("root",), "torchvision_fashion_mnist": ("root",),
                 "torchvision_cifar10": ("root",), "csv": ("path",), "image_folder": ("train_root",)}
ALWAYS_POOLED = ("sklearn_digits", "sklearn_breast_cancer", "csv")


def n_classes_of(spec: dict) -> int | None:
    """Number of classes, known without preparing the dataset (None when only the data can tell)."""
    if spec["source"] in SOURCE_FACTS:
        return SOURCE_FACTS[spec["source"]]["n_classes"]
    if "n_classes" in spec:
        return spec["n_classes"]
    if spec["source"] == "image_folder" and Path(spec["train_root"]).is_dir():
        return sum(1 for entry in Path(spec["train_root"]).iterdir() if entry.is_dir())
    return None


# Settings of a dataset that determine the content of its HDF5 file, per source (with those of all).
CONTENT_KEYS = ("source", "train_per_class", "test_per_class", "validation_per_class", "seed")
SOURCE_CONTENT_KEYS = {
    "sklearn_digits": (), "sklearn_breast_cancer": (),
    "torchvision_mnist": ("root", "copy_from", "split"), "torchvision_fashion_mnist": ("root", "copy_from", "split"),
    "torchvision_cifar10": ("root", "copy_from", "split", "preprocessing"),
    "csv": ("path", "label_column"),
    "image_folder": ("train_root", "test_root", "n_classes", "image_size", "split"),
}


def content_settings(settings: dict) -> dict:
    """The dataset settings its file depends on: other settings (model, protocol, ...) never rebuild it."""
    keys = CONTENT_KEYS + SOURCE_CONTENT_KEYS[settings["source"]]
    return {key: settings[key] for key in keys if key in settings}
