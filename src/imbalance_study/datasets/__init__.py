"""Datasets, prepared once into one HDF5 file each.

``prepare(name, spec, path)`` reads a source, draws the splits (balanced, or a stratified test set and
a pool at the data's own counts), fits the preprocessing on the training pool and writes the file;
every later stage reads it with ``load`` (or ``load_labels``). The package's modules, one concept each:

* ``store``:         the file layout (the contract), ``Dataset``, ``write``, ``load``, ``content_digest``
* ``sources``:       one reader per source (sklearn, torchvision, tables, image folders), ``copy_files``
* ``tables``:        a user's CSV / Parquet / KEEL table: checked, and encoded (ColumnTransformer)
* ``keel``:          reading KEEL's ``.dat`` format
* ``splits``:        the draws of validation set, test set and training pool, and their order
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
from ..source_facts import NATURAL, split_design, test_kind, validation_fraction
from .splits import balanced_subset, draw_indices, draw_splits
from .tables import Table, encode, load_table, table_problems
from .store import FORMAT_VERSION, KINDS, SPLITS, Dataset, DatasetError, content_digest, load, load_labels, write

__all__ = [
    "CIFAR10_DECLARED_CHECKSUMS", "CIFAR10_FOLDER", "FORMAT_VERSION", "GCN_MIN_DIVISOR", "GCN_SCALE",
    "IMAGENET_MEAN", "IMAGENET_STD", "KINDS", "SOURCES", "SPLITS", "TORCHVISION_FOLDERS", "ZCA_FILTER_BIAS",
    "Dataset", "DatasetError", "ImageFolderSubset", "Table", "apply_preprocessing", "balanced_subset",
    "content_digest", "copy_files", "copy_raw_files", "draw_indices", "fit_zca", "global_contrast_normalize",
    "load", "load_labels", "load_table", "prepare", "table_problems", "write",
]


def prepare(name: str, spec: dict, path: str | Path) -> Dataset:
    """Build the dataset ``name`` from its config ``spec`` and write it to ``path`` atomically."""
    source = spec["source"]
    raw = read_source(name, spec)

    split = "pooled" if raw.test_data is None else spec["split"]
    if raw.kind == "image_folder" and split == "pooled" and raw.test_data is not None:
        raise DatasetError(f"datasets.{name}.split: pooled cannot merge train_root and test_root; "
                           f"leave out test_root to draw the test set from train_root")
    what = str(spec["path"]) if raw.table is not None else source
    rng = np.random.default_rng(spec["seed"])
    parts = draw_splits(raw, spec, rng, what, split, up_to=raw.kind == "image_folder")

    if raw.table is not None:
        encoded, preprocessing_arrays, preprocessing_attrs = encode(
            raw.table, {part: rows for part, (rows, _) in parts.items()}, spec["missing"] == "impute")
        parts = {part: (encoded[part], labels) for part, (_, labels) in parts.items()}
        method = "columns"
        raw.attrs["feature_names"] = preprocessing_attrs["feature_names"]
    else:
        method = method_for(source, raw.kind, spec)
        parts, preprocessing_arrays, preprocessing_attrs = preprocess(method, parts)

    attrs = {
        "name": name, "source": source, "kind": raw.kind, "class_names": json.dumps(raw.class_names),
        "train_per_class": spec["train_per_class"], "validation_per_class": spec["validation_per_class"],
        "seed": spec["seed"], "split": split, "preprocessing": method,
        "provenance": json.dumps(raw.provenance, sort_keys=True), "format_version": FORMAT_VERSION,
        **_design_attrs(spec, parts, len(raw.class_names)), **raw.attrs,
    }
    fields = {}
    if raw.kind == "image_folder":
        for part, (paths, labels) in parts.items():
            fields[f"{part}_paths"], fields[f"{part}_labels"] = paths, labels
        fields["roots"] = {"train": attrs["train_root"], "validation": attrs["train_root"],
                           "test": attrs["test_root"] or attrs["train_root"]}
        fields["resize"], fields["crop"] = attrs["resize"], attrs["crop"]
        fields.update(train_images=None, test_images=None)
    else:
        for part, (data, labels) in parts.items():
            fields[f"{part}_images"], fields[f"{part}_labels"] = data, labels
    dataset = Dataset(name=name, class_names=raw.class_names, kind=raw.kind, preprocessing=preprocessing_arrays,
                      **fields)
    dataset = replace(dataset, digest=content_digest(dataset))
    write(dataset, attrs, path, preprocessing_attrs)
    return dataset


def _design_attrs(spec: dict, parts: dict, n_classes: int) -> dict:
    """How the splits were drawn and the class counts they hold, so that scores and figures can say
    whether the test set is balanced or stratified and at which counts the pool is natural."""
    attrs = {f"{part}_class_counts": json.dumps(np.bincount(labels, minlength=n_classes).tolist())
             for part, (_, labels) in parts.items()}
    attrs["test"] = test_kind(spec)
    attrs["natural"] = spec["train_per_class"] == NATURAL
    if spec.get("test_per_class") is not None:
        attrs["test_per_class"] = spec["test_per_class"]
    if test_kind(spec) == "stratified":
        kind, count, index = split_design(spec)
        attrs.update(test_fraction=1 / count if kind == "kfold" else spec["test_fraction"], split_kind=kind,
                     split_count=count, split_index=index)
    if validation_fraction(spec):
        attrs["validation_fraction"] = validation_fraction(spec)
    return attrs
