"""Datasets, prepared once into one HDF5 file each.

File layout (the contract every later stage reads)::

    /train/images   uint8 (N, H, W) or (N, H, W, C)   the balanced training pool
    /train/labels   int64 (N,)
    /test/images    uint8                              the balanced test set
    /test/labels    int64
    attrs: name, source, class_names (JSON), train_per_class, test_per_class, seed,
           provenance (JSON: source files and their checksums), format_version

Image values are stored as uint8 and fed to the networks scaled to [0, 1) (x / 256, as Caffe's
``scale: 0.00390625``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path

FORMAT_VERSION = 1
SOURCES = ("sklearn_digits", "torchvision_mnist", "torchvision_fashion_mnist")
TORCHVISION_FOLDERS = {"torchvision_mnist": "MNIST", "torchvision_fashion_mnist": "FashionMNIST"}


class DatasetError(ValueError):
    """A dataset file or source that cannot be used; the message names it."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    digest: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn uniformly at random without replacement."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise DatasetError(
                f"{what}: class {label} has {len(members)} examples, fewer than the {per_class} asked for"
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def split_pooled(images: np.ndarray, labels: np.ndarray, train_per_class: int, test_per_class: int,
                 rng: np.random.Generator, what: str):
    """Draw a balanced test set, then a balanced training pool from what is left: disjoint by construction."""
    test_index = balanced_subset(labels, test_per_class, rng, f"{what} test set")
    remaining = np.setdiff1d(np.arange(len(labels)), test_index)
    train_index = remaining[balanced_subset(labels[remaining], train_per_class, rng, f"{what} training pool")]
    return images[train_index], labels[train_index], images[test_index], labels[test_index]


def _digits_source(train_per_class: int, test_per_class: int, rng: np.random.Generator):
    """scikit-learn's 8x8 digits have no official split: make a stratified, balanced one."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The 17 grey levels (0..16) are spread over uint8 so every source shares one value range.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    content = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    provenance = {"package": "scikit-learn", "loader": "sklearn.datasets.load_digits", "sha256_images_labels": content}
    class_names = [str(name) for name in digits.target_names]
    return (*split_pooled(images, labels, train_per_class, test_per_class, rng, "digits"), class_names, provenance)


def _torchvision_source(kind: str, root: Path, train_per_class: int, test_per_class: int, split: str,
                        rng: np.random.Generator):
    """An official torchvision dataset.

    ``split="official"`` draws the pool from the official training split and the test set from the
    official test split; ``"pooled"`` merges both splits first, which the paper's MNIST counts need
    (1,000 test images per class, where the official test split has only 892 fives).
    """
    import torchvision

    dataset_class = {"torchvision_mnist": torchvision.datasets.MNIST,
                     "torchvision_fashion_mnist": torchvision.datasets.FashionMNIST}[kind]
    try:
        # download=True verifies the md5 of files already under root and fetches only missing ones.
        train = dataset_class(root=str(root), train=True, download=True)
        test = dataset_class(root=str(root), train=False, download=True)
    except Exception as error:  # torchvision raises several types for a failed fetch
        raise DatasetError(
            f"{kind}: could not load from root '{root}' ({error}). Offline, copy the official files "
            f"first, e.g. `cp -r ../shared/data/MNIST {root}/`"
        ) from error
    raw_folder = Path(train.raw_folder)
    provenance = {"package": "torchvision", "loader": f"torchvision.datasets.{dataset_class.__name__}",
                  "files_md5": {name: md5 for name, md5 in dataset_class.resources}}
    for name in provenance["files_md5"]:
        if not (raw_folder / name).is_file():
            provenance["files_md5"][name] = None
    train_images, train_labels = train.data.numpy().astype(np.uint8), train.targets.numpy().astype(np.int64)
    test_images, test_labels = test.data.numpy().astype(np.uint8), test.targets.numpy().astype(np.int64)
    if split == "pooled":
        parts = split_pooled(np.concatenate([train_images, test_images]), np.concatenate([train_labels, test_labels]),
                             train_per_class, test_per_class, rng, kind)
    else:
        train_index = balanced_subset(train_labels, train_per_class, rng, f"{kind} training pool")
        test_index = balanced_subset(test_labels, test_per_class, rng, f"{kind} test set")
        parts = train_images[train_index], train_labels[train_index], test_images[test_index], test_labels[test_index]
    return (*parts, list(train.classes), provenance)


def prepare(name: str, spec: dict, path: str | Path) -> Dataset:
    """Build the dataset ``name`` from its config ``spec`` and write it to ``path`` atomically."""
    source = spec["source"]
    rng = np.random.default_rng(spec.get("seed", 0))
    if source == "sklearn_digits":
        parts = _digits_source(spec["train_per_class"], spec["test_per_class"], rng)
    elif source in ("torchvision_mnist", "torchvision_fashion_mnist"):
        root = Path(spec["root"])
        root.mkdir(parents=True, exist_ok=True)
        if spec.get("copy_from"):
            copy_raw_files(spec["copy_from"], root, TORCHVISION_FOLDERS[source])
        parts = _torchvision_source(source, root, spec["train_per_class"], spec["test_per_class"],
                                    spec.get("split", "official"), rng)
    else:
        raise DatasetError(f"datasets.{name}.source: unknown source '{source}', expected one of {SOURCES}")
    train_images, train_labels, test_images, test_labels, class_names, provenance = parts
    dataset = Dataset(name, train_images, train_labels, test_images, test_labels, class_names)
    attrs = {
        "name": name,
        "source": source,
        "class_names": json.dumps(class_names),
        "train_per_class": spec["train_per_class"],
        "test_per_class": spec["test_per_class"],
        "seed": spec.get("seed", 0),
        "split": "pooled" if source == "sklearn_digits" else spec.get("split", "official"),
        "provenance": json.dumps(provenance, sort_keys=True),
        "format_version": FORMAT_VERSION,
    }
    write(dataset, attrs, path)
    return dataset


def write(dataset: Dataset, attrs: dict, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            for split in ("train", "test"):
                group = handle.create_group(split)
                group.create_dataset("images", data=getattr(dataset, f"{split}_images"), compression="gzip")
                group.create_dataset("labels", data=getattr(dataset, f"{split}_labels"))
            for key, value in attrs.items():
                handle.attrs[key] = value
            handle.attrs["sha256_content"] = content_digest(dataset)


def content_digest(dataset: Dataset) -> str:
    digest = hashlib.sha256()
    for array in (dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def load(path: str | Path, verify: bool = True) -> Dataset:
    """Read a prepared dataset; a missing part, a truncated file or a checksum mismatch names the file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            missing = [key for key in ("train/images", "train/labels", "test/images", "test/labels") if key not in handle]
            if missing:
                raise DatasetError(f"{path}: not a prepared dataset, missing {missing}")
            arrays = {key.replace("/", "_"): handle[key][()] for key in
                      ("train/images", "train/labels", "test/images", "test/labels")}
            name = str(handle.attrs.get("name", path.stem))
            class_names = json.loads(handle.attrs["class_names"])
            stored_digest = handle.attrs["sha256_content"]
    except (OSError, KeyError) as error:
        raise DatasetError(f"{path}: cannot read the HDF5 file ({error})") from error
    dataset = Dataset(name=name, class_names=class_names, digest=str(stored_digest), **arrays)
    if len(dataset.train_images) != len(dataset.train_labels) or len(dataset.test_images) != len(dataset.test_labels):
        raise DatasetError(f"{path}: images and labels differ in length")
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


def copy_raw_files(source_root: str | Path, root: str | Path, folder: str) -> None:
    """Copy official raw files (e.g. from ``../shared/data``) into a writable torchvision root.

    Only file contents are copied, not permissions: torchvision unpacks next to the archives, so the
    copy must be writable even when the source is read-only.
    """
    source = Path(source_root) / folder / "raw"
    if not source.is_dir():
        raise DatasetError(f"copy_from: no folder {source} with the official raw files")
    target = Path(root) / folder / "raw"
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        if file.is_file() and not (target / file.name).exists():
            with atomic_path(target / file.name) as temporary:
                shutil.copyfile(file, temporary)
