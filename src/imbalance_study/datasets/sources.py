"""Where a dataset's examples come from: one reader per source, each giving the undrawn ``Raw`` data.

Sources: scikit-learn's digits and breast cancer data and a synthetic 97/3 set, torchvision's MNIST,
FashionMNIST and CIFAR-10 (from official files under a root, optionally copied there first), a user's
table (CSV, Parquet or KEEL .dat; ``csv`` reads it as CSV whatever its extension), and an image folder
(listed, not read). Heavy libraries (torchvision, scikit-learn, pandas) are imported inside the
readers, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .store import DatasetError

SOURCES = ("sklearn_digits", "torchvision_mnist", "torchvision_fashion_mnist", "torchvision_cifar10",
           "sklearn_breast_cancer", "synthetic_97_3", "csv", "table", "image_folder")
TORCHVISION_FOLDERS = {"torchvision_mnist": "MNIST", "torchvision_fashion_mnist": "FashionMNIST"}

CIFAR10_FOLDER = "cifar-10-batches-py"
# Written only by tests/fixtures.py: md5s of a fixture's batch files, which the official ones cannot match.
CIFAR10_DECLARED_CHECKSUMS = "TEST_FIXTURE_MD5.json"


@dataclass
class Raw:
    """What a source offers before any draw: examples (images, features or paths) and labels."""

    train_data: np.ndarray
    train_labels: np.ndarray
    test_data: np.ndarray | None  # None: the source has no official test split
    test_labels: np.ndarray | None
    class_names: list[str]
    provenance: dict
    kind: str = "images"
    attrs: dict = field(default_factory=dict)
    table: object = None  # a user's table (tables.Table): the examples are its row numbers, encoded later


def read_source(name: str, spec: dict) -> Raw:
    """The raw data of dataset ``name`` from the source its config ``spec`` names."""
    source = spec["source"]
    if source == "sklearn_digits":
        return _digits_source(spec)
    if source in TORCHVISION_FOLDERS:
        return _torchvision_source(source, spec)
    if source == "torchvision_cifar10":
        return _cifar10_source(spec)
    if source == "sklearn_breast_cancer":
        return _breast_cancer_source(spec)
    if source == "synthetic_97_3":
        return _synthetic_source(spec)
    if source in ("csv", "table"):
        return _table_source(name, spec)
    if source == "image_folder":
        return _image_folder_source(name, spec)
    raise DatasetError(f"datasets.{name}.source: unknown source '{source}', expected one of {SOURCES}")


def _digits_source(spec: dict) -> Raw:
    """scikit-learn's 8x8 digits have no official split: always pooled."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The 17 grey levels (0..16) are spread over uint8 so every source shares one value range.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    content = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    provenance = {"package": "scikit-learn", "loader": "sklearn.datasets.load_digits", "sha256_images_labels": content}
    return Raw(images, labels, None, None, [str(name) for name in digits.target_names], provenance)


def _torchvision_source(kind: str, spec: dict) -> Raw:
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
    return Raw(train.data.numpy().astype(np.uint8), train.targets.numpy().astype(np.int64),
               test.data.numpy().astype(np.uint8), test.targets.numpy().astype(np.int64),
               list(train.classes), provenance)


def _cifar10_source(spec: dict) -> Raw:
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
    return Raw(np.asarray(train.data, dtype=np.uint8), np.asarray(train.targets, dtype=np.int64),
               np.asarray(test.data, dtype=np.uint8), np.asarray(test.targets, dtype=np.int64),
               list(train.classes), provenance)


def _breast_cancer_source(spec: dict) -> Raw:
    """scikit-learn's Wisconsin breast cancer data (569 x 30, embedded in the package): always pooled."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = np.asarray(data.data, dtype=np.float64)
    labels = np.asarray(data.target, dtype=np.int64)  # sklearn's order: 0 malignant (212), 1 benign (357)
    content = hashlib.sha256(features.tobytes() + labels.tobytes()).hexdigest()
    provenance = {"package": "scikit-learn", "loader": "sklearn.datasets.load_breast_cancer",
                  "sha256_features_labels": content}
    return Raw(features, labels, None, None, [str(name) for name in data.target_names], provenance,
               kind="tabular", attrs={"feature_names": json.dumps([str(name) for name in data.feature_names])})


def _table_source(name: str, spec: dict) -> Raw:
    """A user's table (CSV, Parquet, KEEL .dat; ``tables``), checked; always pooled.

    The examples are the table's row numbers: its columns are encoded only once the training part is
    drawn (``tables.encode``). Labels are numbered 0..K-1 in sorted order (numerically for numbers,
    else as text).
    """
    from .tables import load_table

    table = load_table(name, spec)
    provenance = {"file": str(table.path), "sha256_file": hashlib.sha256(table.path.read_bytes()).hexdigest(),
                  "label_column": spec["label_column"], "numeric_columns": table.numeric,
                  "categorical_columns": table.categorical}
    return Raw(np.arange(len(table.labels)), table.labels, None, None, table.class_names, provenance, kind="tabular",
               attrs={"label_column": spec["label_column"], "path": str(table.path)}, table=table)


def _synthetic_source(spec: dict) -> Raw:
    """A synthetic binary set at 97/3 (1,940 and 60 examples, 20 features of which 4 informative and
    2 redundant), from ``sklearn.datasets.make_classification`` with ``weights=[0.97]``, no label
    noise and a fixed seed: synthetic, not measured data, for a naturally imbalanced table offline."""
    from sklearn.datasets import make_classification

    features, labels = make_classification(n_samples=2000, n_features=20, n_informative=4, n_redundant=2,
                                           weights=[0.97], flip_y=0.0, random_state=0)
    labels = labels.astype(np.int64)
    content = hashlib.sha256(features.tobytes() + labels.tobytes()).hexdigest()
    provenance = {"package": "scikit-learn", "loader": "sklearn.datasets.make_classification", "synthetic": True,
                  "arguments": "n_samples=2000, n_features=20, n_informative=4, n_redundant=2, weights=[0.97], "
                               "flip_y=0, random_state=0", "sha256_features_labels": content}
    return Raw(features, labels, None, None, ["majority", "minority"], provenance, kind="tabular",
               attrs={"feature_names": json.dumps([f"x{column}" for column in range(features.shape[1])])})


def _image_folder_source(name: str, spec: dict) -> Raw:
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
    attrs = {"train_root": str(roots["train"]), "test_root": str(roots.get("test", "")),
             "resize": int(spec["image_size"]["resize"]), "crop": int(spec["image_size"]["crop"])}
    return Raw(*listed["train"], test_paths, test_labels, list(class_names), provenance, kind="image_folder",
               attrs=attrs)


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

