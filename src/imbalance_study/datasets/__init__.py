"""Datasets, prepared once into one HDF5 file each.

``prepare(name, spec, path)`` reads a source, draws balanced splits, fits the preprocessing on the
training pool and writes the file; every later stage reads it with ``load`` (or ``load_labels``).
The package's modules, one concept each:

* ``store``:         the file layout (the contract), ``Dataset``, ``write``, ``load``, ``content_digest``
* ``sources``:       one reader per source (sklearn, torchvision, CSV, image folders), ``copy_files``
* ``splits``:        the balanced draws of validation set, test set and training pool, and their order
* ``preprocessing``: GCN + ZCA and standardisation, fitted, stored and reapplied
* ``image_folder``:  ``ImageFolderSubset``, decoding an image folder's files on the fly

Every name is re-exported here, so callers use ``datasets.<name>``. Importing the package loads no
torch, torchvision, scikit-learn or pandas: those are imported where they are used.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .image_folder import IMAGENET_MEAN, IMAGENET_STD, ImageFolderSubset
from .preprocessing import (GCN_MIN_DIVISOR, GCN_SCALE, ZCA_FILTER_BIAS, _zca_by_eigh, apply_preprocessing,
                            fit_zca, global_contrast_normalize, method_for, preprocess)
from .sources import (CIFAR10_DECLARED_CHECKSUMS, CIFAR10_FOLDER, SOURCES, TORCHVISION_FOLDERS, copy_files,
                      copy_raw_files, read_source)
from .splits import balanced_subset, draw_splits
from .store import FORMAT_VERSION, KINDS, SPLITS, Dataset, DatasetError, content_digest, load, load_labels, write

__all__ = [
    "CIFAR10_DECLARED_CHECKSUMS", "CIFAR10_FOLDER", "FORMAT_VERSION", "GCN_MIN_DIVISOR", "GCN_SCALE",
    "IMAGENET_MEAN", "IMAGENET_STD", "KINDS", "SOURCES", "SPLITS", "TORCHVISION_FOLDERS", "ZCA_FILTER_BIAS",
    "Dataset", "DatasetError", "ImageFolderSubset", "apply_preprocessing", "balanced_subset", "content_digest",
    "copy_files", "copy_raw_files", "fit_zca", "global_contrast_normalize", "load", "load_labels", "prepare",
    "write",
]


def prepare(name: str, spec: dict, path: str | Path) -> Dataset:
    """Build the dataset ``name`` from its config ``spec`` and write it to ``path`` atomically."""
    source = spec["source"]
    raw = read_source(name, spec)

    split = "pooled" if raw.test_data is None else spec["split"]
    if raw.kind == "image_folder" and split == "pooled" and raw.test_data is not None:
        raise DatasetError(f"datasets.{name}.split: pooled cannot merge train_root and test_root; "
                           f"leave out test_root to draw the test set from train_root")
    what = str(spec["path"]) if source == "csv" else source
    rng = np.random.default_rng(spec["seed"])
    parts = draw_splits(raw, spec, rng, what, split, up_to=raw.kind == "image_folder")

    method = method_for(source, raw.kind, spec)
    parts, preprocessing_arrays, preprocessing_attrs = preprocess(method, parts)

    attrs = {
        "name": name, "source": source, "kind": raw.kind, "class_names": json.dumps(raw.class_names),
        "train_per_class": spec["train_per_class"], "validation_per_class": spec["validation_per_class"],
        "test_per_class": spec["test_per_class"], "seed": spec["seed"], "split": split,
        "preprocessing": method, "provenance": json.dumps(raw.provenance, sort_keys=True),
        "format_version": FORMAT_VERSION, **raw.attrs,
    }
    fields = {}
    if raw.kind == "image_folder":
        for part, (paths, labels) in parts.items():
            fields[f"{part}_paths"], fields[f"{part}_labels"] = paths, labels
        fields["roots"] = {"train": attrs["train_root"], "validation": attrs["train_root"],
                           "test": attrs["test_root"] or attrs["train_root"]}
        fields["resize"], fields["crop"] = attrs["resize"], attrs["crop"]
        attrs["train_class_counts"] = json.dumps(np.bincount(parts["train"][1], minlength=len(raw.class_names)).tolist())
        fields.update(train_images=None, test_images=None)
    else:
        for part, (data, labels) in parts.items():
            fields[f"{part}_images"], fields[f"{part}_labels"] = data, labels
    dataset = Dataset(name=name, class_names=raw.class_names, kind=raw.kind, preprocessing=preprocessing_arrays,
                      **fields)
    dataset = replace(dataset, digest=content_digest(dataset))
    write(dataset, attrs, path, preprocessing_attrs)
    return dataset
