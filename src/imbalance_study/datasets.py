"""Datasets, prepared once into one HDF5 file each.

File layout (the contract every later stage reads)::

    /train/images       the balanced training pool (absent for image folders), one of
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
    attrs: name, source, kind (images | tabular | image_folder; missing = images), class_names (JSON),
           train_per_class, validation_per_class, test_per_class, seed, split, preprocessing,
           provenance (JSON: source files and their checksums), format_version, sha256_content,
           and per source: feature_names (tabular), train_root, test_root, resize, crop,
           train_class_counts (image folders)

Draw order, all from one generator seeded with the spec's ``seed``: the validation set first (out of
the training data, before anything else), then, for a pooled split, the test set, then the training
pool from what is left; for an official split the training pool, then the test set from the official
test split. Without a validation set the draws are those of format 1, so old files stay valid.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path

FORMAT_VERSION = 2
SOURCES = ("sklearn_digits", "torchvision_mnist", "torchvision_fashion_mnist", "torchvision_cifar10",
           "sklearn_breast_cancer", "csv", "image_folder")
TORCHVISION_FOLDERS = {"torchvision_mnist": "MNIST", "torchvision_fashion_mnist": "FashionMNIST"}
KINDS = ("images", "tabular", "image_folder")
SPLITS = ("train", "validation", "test")

# Global contrast normalisation and ZCA as in Goodfellow et al.'s maxout CIFAR-10 preprocessing
# (pylearn2's make_cifar10_gcn_whitened.py), which All-CNN (Springenberg et al. 2015) reuses:
# pylearn2's global_contrast_normalize(X, scale=55.) divides each centred image by its L2 NORM over
# all 3,072 values (use_std=False), not by its standard deviation, so every image gets norm 55,
# i.e. a root-mean-square value of 55 / sqrt(3072) ~ 0.99 per pixel; divisors below 1e-8 become 1.
GCN_SCALE = 55.0
GCN_MIN_DIVISOR = 1e-8
# pylearn2's ZCA(filter_bias=0.1): P = V diag(1 / sqrt(lambda + 0.1)) V^T with the biased (1/N)
# covariance of the GCN'd training pool. The bias is absolute, on the GCN scale above (pixel
# variance ~1): directions with eigenvalue lambda keep variance lambda / (lambda + 0.1).
ZCA_FILTER_BIAS = 0.1
# The whitening runs over this many images at a time, so 60,000 CIFAR images need ~0.5 GB, not ~3 GB.
_CHUNK = 5000

CIFAR10_FOLDER = "cifar-10-batches-py"
# Written only by tests/fixtures.py: md5s of a fixture's batch files, which the official ones cannot match.
CIFAR10_DECLARED_CHECKSUMS = "TEST_FIXTURE_MD5.json"

# ImageNet statistics of pixels scaled to [0, 1] (torchvision's convention for its ImageNet models).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator, what: str,
                    n_classes: int | None = None, class_names: list[str] | None = None,
                    up_to: bool = False) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn uniformly at random without replacement.

    ``up_to``: a class with fewer examples keeps all of them (ImageNet's cap) instead of failing.
    ``n_classes``: classes 0..K-1 must all be present, even one with no examples left at all.
    """
    classes = np.arange(n_classes) if n_classes is not None else np.unique(labels)
    chosen = []
    for label in classes:
        members = np.flatnonzero(labels == label)
        named = f"class {label}" if class_names is None or class_names[label] == str(label) else \
            f"class {label} ('{class_names[label]}')"
        if len(members) < per_class and not (up_to and len(members) > 0):
            raise DatasetError(f"{what}: {named} has {len(members)} examples, fewer than the {per_class} asked for")
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def split_pooled(images: np.ndarray, labels: np.ndarray, train_per_class: int, test_per_class: int,
                 rng: np.random.Generator, what: str):
    """Draw a balanced test set, then a balanced training pool from what is left: disjoint by construction."""
    drawn = _draw_pooled(labels, {"train": train_per_class, "validation": 0, "test": test_per_class}, rng, what,
                         int(labels.max()) + 1, None, up_to=False)
    return images[drawn["train"]], labels[drawn["train"]], images[drawn["test"]], labels[drawn["test"]]


def _draw_pooled(labels, per_class: dict, rng, what, n_classes, class_names, up_to: bool) -> dict:
    """Indices of each split into one pool of examples: validation, then test, then the training pool."""
    available = np.arange(len(labels))
    drawn = {}
    for split, title in (("validation", "validation set"), ("test", "test set")):
        if split == "validation" and not per_class["validation"]:
            continue
        local = balanced_subset(labels[available], per_class[split], rng, f"{what} {title}", n_classes, class_names)
        drawn[split] = available[local]
        available = np.setdiff1d(available, drawn[split])
    drawn["train"] = available[balanced_subset(labels[available], per_class["train"], rng, f"{what} training pool",
                                               n_classes, class_names, up_to=up_to)]
    return drawn


def _draw_official(train_labels, test_labels, per_class: dict, rng, what, n_classes, class_names,
                   up_to: bool) -> tuple[dict, dict]:
    """Validation and training pool from the official training split, test set from the official test split."""
    available = np.arange(len(train_labels))
    from_train = {}
    if per_class["validation"]:
        from_train["validation"] = available[balanced_subset(train_labels, per_class["validation"], rng,
                                                             f"{what} validation set", n_classes, class_names)]
        available = np.setdiff1d(available, from_train["validation"])
    from_train["train"] = available[balanced_subset(train_labels[available], per_class["train"], rng,
                                                    f"{what} training pool", n_classes, class_names, up_to=up_to)]
    from_test = {"test": balanced_subset(test_labels, per_class["test"], rng, f"{what} test set", n_classes,
                                         class_names)}
    return from_train, from_test


@dataclass
class _Raw:
    """What a source offers before any draw: examples (images, features or paths) and labels."""

    train_data: np.ndarray
    train_labels: np.ndarray
    test_data: np.ndarray | None  # None: the source has no official test split
    test_labels: np.ndarray | None
    class_names: list[str]
    provenance: dict
    kind: str = "images"
    attrs: dict = field(default_factory=dict)


def _draw_splits(raw: _Raw, spec: dict, rng: np.random.Generator, what: str, split: str,
                 up_to: bool = False) -> dict:
    """``{split: (data, labels)}`` for the splits the spec asks for."""
    per_class = {"train": spec["train_per_class"], "validation": spec.get("validation_per_class", 0),
                 "test": spec["test_per_class"]}
    n_classes = len(raw.class_names)
    if split == "pooled":
        data, labels = raw.train_data, raw.train_labels
        if raw.test_data is not None:
            data, labels = np.concatenate([data, raw.test_data]), np.concatenate([labels, raw.test_labels])
        drawn = _draw_pooled(labels, per_class, rng, what, n_classes, raw.class_names, up_to)
        return {name: (data[index], labels[index]) for name, index in drawn.items()}
    from_train, from_test = _draw_official(raw.train_labels, raw.test_labels, per_class, rng, what, n_classes,
                                           raw.class_names, up_to)
    parts = {name: (raw.train_data[index], raw.train_labels[index]) for name, index in from_train.items()}
    parts["test"] = (raw.test_data[from_test["test"]], raw.test_labels[from_test["test"]])
    return parts


# ----------------------------------------------------------------------------------------- sources

def _digits_source(spec: dict) -> _Raw:
    """scikit-learn's 8x8 digits have no official split: always pooled."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The 17 grey levels (0..16) are spread over uint8 so every source shares one value range.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    content = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    provenance = {"package": "scikit-learn", "loader": "sklearn.datasets.load_digits", "sha256_images_labels": content}
    return _Raw(images, labels, None, None, [str(name) for name in digits.target_names], provenance)


def _torchvision_source(kind: str, spec: dict) -> _Raw:
    """An official torchvision dataset.

    ``split="official"`` draws the pool from the official training split and the test set from the
    official test split; ``"pooled"`` merges both splits first, which the paper's MNIST counts need
    (1,000 test images per class, where the official test split has only 892 fives).
    """
    import torchvision

    root = Path(spec["root"])
    root.mkdir(parents=True, exist_ok=True)
    if spec.get("copy_from"):
        copy_raw_files(spec["copy_from"], root, TORCHVISION_FOLDERS[kind])
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
    return _Raw(train.data.numpy().astype(np.uint8), train.targets.numpy().astype(np.int64),
                test.data.numpy().astype(np.uint8), test.targets.numpy().astype(np.int64),
                list(train.classes), provenance)


def _cifar10_source(spec: dict) -> _Raw:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10(root, train=..., download=False)``.

    torchvision's class refuses any folder whose six batch files (and ``batches.meta``) do not have
    the official md5s (``_check_integrity`` / ``_load_meta``), so it cannot read a test fixture as
    it stands. The official files are read by torchvision's class unchanged. Only when they fail that
    check AND the folder holds ``TEST_FIXTURE_MD5.json`` (written by ``tests/fixtures.py`` and by
    nothing else) is the folder read by a subclass of torchvision's class whose ``train_list``,
    ``test_list`` and ``meta`` carry the md5s declared there: torchvision's own integrity check and
    unpickling code still run, against those checksums. The provenance records which checksums held.
    """
    import torchvision

    root = Path(spec["root"])
    if spec.get("copy_from"):
        copy_files(Path(spec["copy_from"]) / CIFAR10_FOLDER, root / CIFAR10_FOLDER)
    official = torchvision.datasets.CIFAR10
    dataset_class, checksums = official, "official"
    folder = root / CIFAR10_FOLDER
    try:
        train = official(root=str(root), train=True, download=False)
        test = official(root=str(root), train=False, download=False)
    except RuntimeError as error:
        declared_file = folder / CIFAR10_DECLARED_CHECKSUMS
        if not declared_file.is_file():
            raise DatasetError(
                f"torchvision_cifar10: no intact CIFAR-10 python batches in {folder} ({error}). Offline, "
                f"set copy_from to a folder holding {CIFAR10_FOLDER}, or fetch {official.url} "
                f"(md5 {official.tgz_md5}) and extract it into {root}") from error
        declared = json.loads(declared_file.read_text())
        dataset_class = type("DeclaredChecksumsCIFAR10", (official,), {
            "train_list": [[name, declared[name]] for name, _ in official.train_list],
            "test_list": [[name, declared[name]] for name, _ in official.test_list],
            "meta": {**official.meta, "md5": declared[official.meta["filename"]]},
        })
        checksums = f"declared in {declared_file.name} (a test fixture, not the official files)"
        try:
            train = dataset_class(root=str(root), train=True, download=False)
            test = dataset_class(root=str(root), train=False, download=False)
        except RuntimeError as fixture_error:
            raise DatasetError(f"torchvision_cifar10: {folder}: batch files do not match the md5s in "
                               f"{declared_file.name} ({fixture_error})") from fixture_error
    files = [name for name, _ in dataset_class.train_list + dataset_class.test_list] + [dataset_class.meta["filename"]]
    md5 = {name: md5 for name, md5 in dataset_class.train_list + dataset_class.test_list}
    md5[dataset_class.meta["filename"]] = dataset_class.meta["md5"]
    provenance = {"package": "torchvision", "loader": "torchvision.datasets.CIFAR10", "checksums": checksums,
                  "files_md5": {name: md5[name] for name in files}}
    return _Raw(np.asarray(train.data, dtype=np.uint8), np.asarray(train.targets, dtype=np.int64),
                np.asarray(test.data, dtype=np.uint8), np.asarray(test.targets, dtype=np.int64),
                list(train.classes), provenance)


def _breast_cancer_source(spec: dict) -> _Raw:
    """scikit-learn's Wisconsin breast cancer data (569 x 30, embedded in the package): always pooled."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = np.asarray(data.data, dtype=np.float64)
    labels = np.asarray(data.target, dtype=np.int64)  # sklearn's order: 0 malignant (212), 1 benign (357)
    content = hashlib.sha256(features.tobytes() + labels.tobytes()).hexdigest()
    provenance = {"package": "scikit-learn", "loader": "sklearn.datasets.load_breast_cancer",
                  "sha256_features_labels": content}
    return _Raw(features, labels, None, None, [str(name) for name in data.target_names], provenance,
                kind="tabular", attrs={"feature_names": json.dumps([str(name) for name in data.feature_names])})


def _csv_source(name: str, spec: dict) -> _Raw:
    """A CSV file: numeric feature columns and one label column (ints or strings); always pooled.

    Labels are numbered 0..K-1 in sorted order (numerically for numbers, else as text).
    """
    import pandas as pd

    path = Path(spec["path"])
    label_column = spec.get("label_column", "label")
    if not path.is_file():
        raise DatasetError(f"datasets.{name}.path: no CSV file {path}")
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError) as error:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DatasetError(f"{path}: cannot read the CSV file ({error})") from error
    if label_column not in table.columns:
        raise DatasetError(f"{path}: no label column '{label_column}' (datasets.{name}.label_column); "
                           f"the columns are {list(table.columns)}")
    feature_columns = [column for column in table.columns if column != label_column]
    if not feature_columns:
        raise DatasetError(f"{path}: no feature columns besides the label column '{label_column}'")
    non_numeric = [str(column) for column in feature_columns if not pd.api.types.is_numeric_dtype(table[column])]
    if non_numeric:
        raise DatasetError(f"{path}: feature columns must be numeric, these are not: {non_numeric}")
    missing = [str(column) for column in feature_columns if table[column].isna().any()]
    if missing:
        rows = {column: int(np.flatnonzero(table[column].isna().to_numpy())[0]) + 2 for column in missing}
        raise DatasetError(f"{path}: missing values (NaN) in columns {missing} (first at file line {rows})")
    if table[label_column].isna().any():
        line = int(np.flatnonzero(table[label_column].isna().to_numpy())[0]) + 2
        raise DatasetError(f"{path}: label column '{label_column}' has a missing value (file line {line})")
    raw_labels = table[label_column]
    if not pd.api.types.is_numeric_dtype(raw_labels):
        raw_labels = raw_labels.astype(str)
    classes, labels = np.unique(raw_labels.to_numpy(), return_inverse=True)
    class_names = [str(value.item() if hasattr(value, "item") else value) for value in classes]
    features = table[feature_columns].to_numpy(dtype=np.float64)
    provenance = {"file": str(path), "sha256_file": hashlib.sha256(path.read_bytes()).hexdigest(),
                  "label_column": label_column}
    return _Raw(features, labels.astype(np.int64), None, None, class_names, provenance, kind="tabular",
                attrs={"feature_names": json.dumps([str(column) for column in feature_columns]),
                       "label_column": label_column, "path": str(path)})


def _image_folder_source(name: str, spec: dict) -> _Raw:
    """Images in torchvision's ImageFolder layout (one subfolder per class), listed, not copied.

    Classes are the sorted subfolder names of ``train_root`` (torchvision's ``find_classes``);
    files are those torchvision's ``make_dataset`` accepts (its IMG_EXTENSIONS), in its sorted order.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    roots = {"train": Path(spec["train_root"])}
    if spec.get("test_root"):
        roots["test"] = Path(spec["test_root"])
    listed = {}
    class_names = None
    for split, root in roots.items():
        key = f"datasets.{name}.{split}_root"
        if not root.is_dir():
            raise DatasetError(f"{key}: no folder {root}")
        try:
            names, class_to_index = find_classes(root)
            if class_names is None:
                class_names, reference = names, class_to_index
            elif names != class_names:
                raise DatasetError(f"{key}: {root} has class folders {sorted(set(names) ^ set(class_names))} "
                                   f"that are not in both train_root and test_root")
            samples = make_dataset(root, reference, extensions=IMG_EXTENSIONS)
        except FileNotFoundError as error:
            raise DatasetError(f"{key}: {root}: {error}") from error
        paths = np.array([Path(path).relative_to(root).as_posix() for path, _ in samples], dtype=object)
        listed[split] = (paths, np.array([label for _, label in samples], dtype=np.int64))
    if spec.get("n_classes") is not None and spec["n_classes"] != len(class_names):
        raise DatasetError(f"datasets.{name}.n_classes: {spec['n_classes']}, but {roots['train']} has "
                           f"{len(class_names)} class folders")
    test_paths, test_labels = listed.get("test", (None, None))
    provenance = {"loader": "torchvision.datasets.folder.make_dataset",
                  "files": {split: len(listed[split][0]) for split in listed}}
    image_size = spec.get("image_size") or {}
    attrs = {"train_root": str(roots["train"]), "test_root": str(roots.get("test", "")),
             "resize": int(image_size.get("resize", 256)), "crop": int(image_size.get("crop", 224))}
    return _Raw(*listed["train"], test_paths, test_labels, list(class_names), provenance, kind="image_folder",
                attrs=attrs)


# ----------------------------------------------------------------------------------- preprocessing

def global_contrast_normalize(images: np.ndarray, scale: float = GCN_SCALE,
                              min_divisor: float = GCN_MIN_DIVISOR) -> np.ndarray:
    """Each image (flattened) minus its mean, divided by its L2 norm / ``scale`` (pylearn2's convention)."""
    design = images.reshape(len(images), -1).astype(np.float64)
    design -= design.mean(axis=1, keepdims=True)
    normalizers = np.sqrt((design ** 2).sum(axis=1)) / scale
    normalizers[normalizers < min_divisor] = 1.0  # a flat image stays zero instead of blowing up
    design /= normalizers[:, None]
    return design


def fit_zca(design: np.ndarray, filter_bias: float = ZCA_FILTER_BIAS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening matrix V diag(1 / sqrt(lambda + filter_bias)) V^T of the rows of ``design``.

    lambda, V: eigenvalues and eigenvectors of the biased (1/N) covariance, as pylearn2's ZCA. With
    fewer rows than columns (small pools, tests) the same matrix comes from a thin SVD, exactly.
    """
    mean = design.mean(axis=0)
    if len(design) < design.shape[1]:
        return mean, _zca_by_svd(design - mean, filter_bias)
    return mean, _zca_by_eigh(design, mean, filter_bias)


def _zca_by_eigh(design: np.ndarray, mean: np.ndarray, filter_bias: float) -> np.ndarray:
    covariance = np.zeros((design.shape[1], design.shape[1]))
    for start in range(0, len(design), _CHUNK):
        centred = design[start:start + _CHUNK] - mean
        covariance += centred.T @ centred
    covariance /= len(design)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # rounding makes the null space's eigenvalues ~ -1e-15
    return (eigenvectors / np.sqrt(eigenvalues + filter_bias)) @ eigenvectors.T


def _zca_by_svd(centred: np.ndarray, filter_bias: float) -> np.ndarray:
    # The covariance has eigenvalues s^2 / N along the right singular vectors and 0 on the rest, where
    # the whitening matrix is 1 / sqrt(filter_bias): P = I / sqrt(b) + V (1/sqrt(lambda + b) - 1/sqrt(b)) V^T.
    _, singular_values, right = np.linalg.svd(centred, full_matrices=False)
    eigenvalues = singular_values ** 2 / len(centred)
    gains = 1.0 / np.sqrt(eigenvalues + filter_bias) - 1.0 / np.sqrt(filter_bias)
    matrix = (right.T * gains) @ right
    matrix[np.diag_indices_from(matrix)] += 1.0 / np.sqrt(filter_bias)
    return matrix


def _gcn_zca(images: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) to float32 (N, H, W, C) through GCN and the given ZCA (HWC flattening)."""
    result = np.empty(images.shape, dtype=np.float32)
    for start in range(0, len(images), _CHUNK):
        design = global_contrast_normalize(images[start:start + _CHUNK])
        result[start:start + _CHUNK] = ((design - mean) @ matrix).reshape(design.shape[:1] + images.shape[1:])
    return result


def _standardise(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((features.astype(np.float64) - mean) / scale).astype(np.float32)


def _preprocess(method: str, parts: dict) -> tuple[dict, dict, dict]:
    """Fit ``method`` on the training pool and apply it to every split.

    Returns the transformed parts, the arrays to store under /preprocessing and its attrs.
    """
    if method == "none":
        return parts, {}, {"method": "none"}
    train_data = parts["train"][0]
    if method == "gcn_zca":
        mean, matrix = fit_zca(global_contrast_normalize(train_data))
        # What is stored is what is applied: float32 arrays, so apply_preprocessing can reproduce it.
        mean, matrix = mean.astype(np.float32), matrix.astype(np.float32)
        wide_mean, wide_matrix = mean.astype(np.float64), matrix.astype(np.float64)
        transformed = {split: (_gcn_zca(data, wide_mean, wide_matrix), labels) for split, (data, labels) in parts.items()}
        attrs = {"method": "gcn_zca", "gcn_scale": GCN_SCALE, "gcn_min_divisor": GCN_MIN_DIVISOR,
                 "zca_filter_bias": ZCA_FILTER_BIAS, "flattening": "HWC row-major"}
        return transformed, {"zca_mean": mean, "zca_matrix": matrix}, attrs
    if method == "standardise":
        mean = train_data.mean(axis=0)
        scale = train_data.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature is centred, not divided by zero (as scikit-learn)
        transformed = {split: (_standardise(data, mean, scale), labels) for split, (data, labels) in parts.items()}
        return transformed, {"standard_mean": mean, "standard_scale": scale}, {"method": "standardise"}
    raise DatasetError(f"preprocessing: unknown method '{method}', expected gcn_zca, standardise or none")


def apply_preprocessing(raw: np.ndarray, path_or_handle) -> np.ndarray:
    """Apply a prepared dataset's stored transform to new raw examples, exactly as to its own.

    ``raw``: uint8 images (N, H, W, C) for gcn_zca, features (N, F) for standardise; returned
    unchanged when the dataset has no preprocessing. ``path_or_handle``: the dataset file or an open
    h5py File.
    """
    if isinstance(path_or_handle, h5py.File):
        return _apply_stored(raw, path_or_handle, path_or_handle.filename)
    try:
        with h5py.File(path_or_handle, "r") as handle:
            return _apply_stored(raw, handle, path_or_handle)
    except OSError as error:
        raise DatasetError(f"{path_or_handle}: cannot read the HDF5 file ({error})") from error


def _apply_stored(raw: np.ndarray, handle: h5py.File, path) -> np.ndarray:
    if "preprocessing" not in handle or handle["preprocessing"].attrs.get("method", "none") == "none":
        return raw
    group = handle["preprocessing"]
    method = group.attrs["method"]
    if method == "gcn_zca":
        if raw.dtype != np.uint8 or raw.shape[1:] != handle["train/images"].shape[1:]:
            raise DatasetError(f"{path}: gcn_zca expects uint8 images {handle['train/images'].shape[1:]}, "
                               f"got {raw.dtype} {raw.shape[1:]}")
        gcn = group["gcn"].attrs
        if gcn["scale"] != GCN_SCALE or gcn["min_divisor"] != GCN_MIN_DIVISOR:
            raise DatasetError(f"{path}: stored GCN constants {dict(gcn)} differ from this code's")
        return _gcn_zca(raw, group["zca_mean"][()].astype(np.float64), group["zca_matrix"][()].astype(np.float64))
    if method == "standardise":
        return _standardise(raw, group["standard_mean"][()], group["standard_scale"][()])
    raise DatasetError(f"{path}: unknown preprocessing method '{method}'")


# ------------------------------------------------------------------------------- prepare and write

def prepare(name: str, spec: dict, path: str | Path) -> Dataset:
    """Build the dataset ``name`` from its config ``spec`` and write it to ``path`` atomically."""
    source = spec["source"]
    if source == "sklearn_digits":
        raw = _digits_source(spec)
    elif source in TORCHVISION_FOLDERS:
        raw = _torchvision_source(source, spec)
    elif source == "torchvision_cifar10":
        raw = _cifar10_source(spec)
    elif source == "sklearn_breast_cancer":
        raw = _breast_cancer_source(spec)
    elif source == "csv":
        raw = _csv_source(name, spec)
    elif source == "image_folder":
        raw = _image_folder_source(name, spec)
    else:
        raise DatasetError(f"datasets.{name}.source: unknown source '{source}', expected one of {SOURCES}")

    split = "pooled" if raw.test_data is None else spec.get("split", "official")
    if raw.kind == "image_folder" and split == "pooled" and raw.test_data is not None:
        raise DatasetError(f"datasets.{name}.split: pooled cannot merge train_root and test_root; "
                           f"leave out test_root to draw the test set from train_root")
    what = str(spec["path"]) if source == "csv" else source
    rng = np.random.default_rng(spec.get("seed", 0))
    parts = _draw_splits(raw, spec, rng, what, split, up_to=raw.kind == "image_folder")

    # The spec's preprocessing key is CIFAR-10's alone: the config schema writes its default into every
    # dataset, so elsewhere it is ignored. Tabular features are always standardised.
    method = {"images": "none", "tabular": "standardise", "image_folder": "none"}[raw.kind]
    if source == "torchvision_cifar10":
        method = spec.get("preprocessing", "gcn_zca")
    parts, preprocessing_arrays, preprocessing_attrs = _preprocess(method, parts)

    attrs = {
        "name": name, "source": source, "kind": raw.kind, "class_names": json.dumps(raw.class_names),
        "train_per_class": spec["train_per_class"], "validation_per_class": spec.get("validation_per_class", 0),
        "test_per_class": spec["test_per_class"], "seed": spec.get("seed", 0), "split": split,
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
    dataset = _with_digest(dataset)
    write(dataset, attrs, path, preprocessing_attrs)
    return dataset


def _with_digest(dataset: Dataset) -> Dataset:
    return replace(dataset, digest=content_digest(dataset))


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
            kind = str(handle.attrs.get("kind", "images"))
            member = "paths" if kind == "image_folder" else "images"
            required = [f"{split}/{part}" for split in ("train", "test") for part in (member, "labels")]
            missing = [key for key in required if key not in handle]
            if missing:
                raise DatasetError(f"{path}: not a prepared dataset, missing {missing}")
            fields = {"kind": kind, "name": str(handle.attrs.get("name", path.stem)),
                      "class_names": json.loads(handle.attrs["class_names"])}
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


def copy_raw_files(source_root: str | Path, root: str | Path, folder: str) -> None:
    """Copy official raw files (e.g. from ``../shared/data``) into a writable torchvision root.

    Only file contents are copied, not permissions: torchvision unpacks next to the archives, so the
    copy must be writable even when the source is read-only.
    """
    source = Path(source_root) / folder / "raw"
    if not source.is_dir():
        raise DatasetError(f"copy_from: no folder {source} with the official raw files")
    copy_files(source, Path(root) / folder / "raw")


def copy_files(source: str | Path, target: str | Path) -> None:
    """Copy the files of folder ``source`` that ``target`` lacks, contents only, each atomically."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise DatasetError(f"copy_from: no folder {source}")
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        if file.is_file() and not (target / file.name).exists():
            with atomic_path(target / file.name) as temporary:
                shutil.copyfile(file, temporary)


# ------------------------------------------------------------------------------------ image folders

class ImageFolderSubset:
    """Images of one split of an image-folder dataset, decoded and augmented on the fly.

    Training: shorter side resized to ``resize``, a random ``crop`` x ``crop`` crop, a random
    horizontal flip; test: resize, then the centre crop. Output: ``(image, label)`` with image a
    float32 tensor (3, crop, crop) of pixels / 255 (torchvision's ToTensor scale, which the ImageNet
    statistics assume) normalised with ImageNet's mean and std per channel.

    Randomness (crop offsets, flips) comes from the subset's own ``torch.Generator``, never the
    global one, so it is reproducible:
      * in one process, ``ImageFolderSubset(..., seed=s)`` or ``reseed(s)`` fixes the stream;
      * with DataLoader workers, pass ``worker_init_fn=ImageFolderSubset.seed_worker`` and
        ``generator=torch.Generator().manual_seed(s)``: each worker reseeds its copy with the seed
        torch gives it (derived from that generator plus the worker id), so runs repeat exactly;
      * an item key ``(position, seed)`` instead of ``position`` draws that item's augmentation from
        ``seed`` alone, independent of workers and order (e.g. seed = f(run seed, iteration, slot)
        for resumable training).
    """

    def __init__(self, dataset: Dataset, split: str, indices=None, train: bool = False, resize: int = 256,
                 crop: int = 224, seed: int = 0):
        paths = getattr(dataset, f"{split}_paths", None)
        if dataset.kind != "image_folder" or paths is None:
            raise DatasetError(f"dataset {dataset.name}: no {split} split of an image folder")
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than the resized shorter side {resize}")
        indices = np.arange(len(paths)) if indices is None else np.asarray(indices)
        root = Path(dataset.roots[split])
        self.paths = [root / paths[index] for index in indices]
        self.labels = getattr(dataset, f"{split}_labels")[indices]
        self.train, self.resize, self.crop = train, resize, crop
        self.generator = None
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        import torch

        self.generator = torch.Generator().manual_seed(int(seed) % (2 ** 63))

    @staticmethod
    def seed_worker(worker_id: int) -> None:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        info.dataset.reseed(info.seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        import torch
        from PIL import Image
        from torchvision.transforms import functional

        if isinstance(item, tuple):
            position, seed = item
            generator = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        else:
            position, generator = item, self.generator
        path = self.paths[position]
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise DatasetError(f"{path}: cannot read the image ({error})") from error
        image = functional.resize(image, self.resize)
        if self.train:
            width, height = image.size
            top = int(torch.randint(0, height - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.crop + 1, (1,), generator=generator))
            image = functional.crop(image, top, left, self.crop, self.crop)
            if torch.rand(1, generator=generator).item() < 0.5:
                image = functional.hflip(image)
        else:
            image = functional.center_crop(image, [self.crop, self.crop])
        tensor = functional.normalize(functional.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)
        return tensor, int(self.labels[position])
