"""The HDF5 file of a prepared dataset: its layout, the ``Dataset`` it holds, and how it is written and read.

File layout (the contract every later stage reads)::

    /train/images       the training pool (absent for image folders), balanced or natural, one of
                          uint8   (N, H, W) or (N, H, W, C)  raw pixels, fed to networks as x / 256
                          float32 (N, H, W, C)               preprocessed images (CIFAR-10 after GCN + ZCA)
                          float32 (N, F)                     standardised tabular features
    /train/labels       int64 (N,)
    /train/paths        image folders only: UTF-8 paths relative to the group's attr ``root``
    /validation/...     optional, same members: a balanced split held out of the training data
    /test/...           the balanced test set, same members
    /preprocessing      optional, the fitted transform (attr ``method``), see ``apply_preprocessing``:
                          gcn_zca:     group gcn (attrs scale, min_divisor, norm), zca_mean (D,),
                                       zca_matrix (D, D) (attr filter_bias), D = H * W * C
                          standardise: standard_mean (F,), standard_scale (F,)
                          columns (a user's table, ``tables.encode``): standard_mean, standard_scale
                                       of the numeric columns, numeric_fill (imputed medians);
                                       attrs numeric_columns, categorical_columns, categories,
                                       feature_names, categorical_fill (all JSON)
    attrs: name, source, kind (images | tabular | image_folder), class_names (JSON),
           train_per_class (a number, or "natural": the pool keeps the data's own counts),
           validation_per_class, test_per_class (balanced test sets), seed, split, preprocessing,
           provenance (JSON: source files and their checksums), format_version, sha256_content,
           test (balanced | stratified), natural (bool), {train,validation,test}_class_counts (JSON),
           for a stratified test set: test_fraction, split_kind (holdout | kfold), split_count,
           split_index, and validation_fraction where one is held out so;
           per source: feature_names (tabular), train_root, test_root, resize, crop (image folders)

How the splits are drawn is in ``splits``; ``sha256_content`` is ``content_digest`` of the arrays.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path

FORMAT_VERSION = 2
KINDS = ("images", "tabular", "image_folder")
SPLITS = ("train", "validation", "test")


class DatasetError(ValueError):
    """A dataset file or source that cannot be used; the message names it."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray | None
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray
    class_names: list[str]
    digest: str = ""
    kind: str = "images"
    validation_images: np.ndarray | None = None
    validation_labels: np.ndarray | None = None
    # Image folders: paths relative to roots[split]; images are read by ImageFolderSubset.
    train_paths: np.ndarray | None = None
    validation_paths: np.ndarray | None = None
    test_paths: np.ndarray | None = None
    roots: dict = field(default_factory=dict)
    resize: int | None = None
    crop: int | None = None
    # The fitted transform's arrays (zca_mean, zca_matrix, standard_mean, standard_scale).
    preprocessing: dict = field(default_factory=dict)
    test_set: str = "balanced"  # how the test set was drawn: balanced, or stratified (the data's own ratio)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """One example's shape as stored: (H, W[, C]), (F,) for tabular data, (crop, crop, 3) for folders."""
        if self.kind == "image_folder":
            return (self.crop, self.crop, 3)
        return tuple(self.train_images.shape[1:])

    @property
    def has_validation(self) -> bool:
        return self.validation_labels is not None

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in SPLITS if getattr(self, f"{split}_labels") is not None)


def write(dataset: Dataset, attrs: dict, path: str | Path, preprocessing_attrs: dict | None = None) -> None:
    text = h5py.string_dtype("utf-8")
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            for split in dataset.splits():
                group = handle.create_group(split)
                images = getattr(dataset, f"{split}_images")
                if images is not None:
                    # uint8 pixels compress well; whitened floats hardly do, and gzip would only cost time.
                    group.create_dataset("images", data=images, compression="gzip" if images.dtype == np.uint8 else None)
                paths = getattr(dataset, f"{split}_paths")
                if paths is not None:
                    group.create_dataset("paths", data=np.asarray(paths, dtype=object), dtype=text)
                    group.attrs["root"] = dataset.roots[split]
                group.create_dataset("labels", data=getattr(dataset, f"{split}_labels"))
            if dataset.preprocessing or preprocessing_attrs:
                group = handle.create_group("preprocessing")
                settings = dict(preprocessing_attrs or {})
                group.attrs["method"] = settings.get("method", "none")
                for key, array in dataset.preprocessing.items():
                    group.create_dataset(key, data=array)
                if settings.get("method") == "columns":
                    group.attrs.update({key: value for key, value in settings.items() if key != "method"})
                if settings.get("method") == "gcn_zca":
                    gcn = group.create_group("gcn")
                    gcn.attrs.update({"scale": settings["gcn_scale"], "min_divisor": settings["gcn_min_divisor"],
                                      "norm": "l2 (pylearn2 global_contrast_normalize, use_std=False)",
                                      "subtract_mean": True})
                    group["zca_matrix"].attrs["filter_bias"] = settings["zca_filter_bias"]
                    group["zca_matrix"].attrs["flattening"] = settings["flattening"]
            for key, value in attrs.items():
                handle.attrs[key] = value
            handle.attrs["sha256_content"] = content_digest(dataset)


def content_digest(dataset: Dataset) -> str:
    """SHA-256 of every stored array, in a fixed order; parts a format-1 file lacks add nothing."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for array in (getattr(dataset, f"{split}_images"), getattr(dataset, f"{split}_labels")):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
    if dataset.validation_labels is not None:
        for array in (dataset.validation_images, dataset.validation_labels):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
    for split in SPLITS:
        paths = getattr(dataset, f"{split}_paths")
        if paths is not None:
            digest.update(f"{split}_paths".encode())
            digest.update("\0".join(str(path) for path in paths).encode())
    for key in sorted(dataset.preprocessing):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(dataset.preprocessing[key]).tobytes())
    return digest.hexdigest()


def load(path: str | Path, verify: bool = True) -> Dataset:
    """Read a prepared dataset; a missing part, a truncated file or a checksum mismatch names the file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            kind = str(handle.attrs["kind"])
            member = "paths" if kind == "image_folder" else "images"
            required = [f"{split}/{part}" for split in ("train", "test") for part in (member, "labels")]
            missing = [key for key in required if key not in handle]
            if missing:
                raise DatasetError(f"{path}: not a prepared dataset, missing {missing}")
            fields = {"kind": kind, "name": str(handle.attrs["name"]),
                      "class_names": json.loads(handle.attrs["class_names"]),
                      "test_set": str(handle.attrs.get("test", "balanced"))}
            roots = {}
            for split in SPLITS:
                if split not in handle:
                    continue
                group = handle[split]
                fields[f"{split}_labels"] = group["labels"][()]
                if "images" in group:
                    fields[f"{split}_images"] = group["images"][()]
                if "paths" in group:
                    fields[f"{split}_paths"] = np.array(group["paths"].asstr()[()], dtype=object)
                    roots[split] = str(group.attrs["root"])
            if "preprocessing" in handle:
                group = handle["preprocessing"]
                fields["preprocessing"] = {key: group[key][()] for key in group if isinstance(group[key], h5py.Dataset)}
            if kind == "image_folder":
                fields.update(roots=roots, resize=int(handle.attrs["resize"]), crop=int(handle.attrs["crop"]),
                              train_images=None, test_images=None)
            stored_digest = handle.attrs["sha256_content"]
    except (OSError, KeyError) as error:
        raise DatasetError(f"{path}: cannot read the HDF5 file ({error})") from error
    dataset = Dataset(digest=str(stored_digest), **fields)
    for split in dataset.splits():
        examples = getattr(dataset, f"{split}_images")
        if examples is None:
            examples = getattr(dataset, f"{split}_paths")
        if examples is None or len(examples) != len(getattr(dataset, f"{split}_labels")):
            raise DatasetError(f"{path}: {split} examples and labels differ in length")
    if verify and content_digest(dataset) != stored_digest:
        raise DatasetError(f"{path}: content checksum does not match the one stored when it was written")
    return dataset


def load_labels(path: str | Path, split: str = "train") -> np.ndarray:
    """Only the labels of one split: index files need no images."""
    try:
        with h5py.File(path, "r") as handle:
            return handle[f"{split}/labels"][()]
    except (OSError, KeyError) as error:
        raise DatasetError(f"{path}: cannot read {split}/labels ({error})") from error
