"""What each dataset source is, known before any data is read: what it offers (classes, the smallest
class of its splits, its class counts), what a config must name for it, which settings the content
of its prepared file depends on (``content_settings``: the dataset rule's params, so nothing else
rebuilds it), and the dataset's design (``test_kind``, ``split_design``): how its test set, validation
set and training pool are drawn. ``design_errors`` checks a design against the data's class counts
before any job runs (a user's table is read for its labels, the embedded sets' counts are known)."""

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
    "synthetic_97_3": {"n_classes": 2, "max_per_class": 60},
}
# The class counts of the sources that are one pool (all of it is read at once).
CLASS_COUNTS = {
    "sklearn_digits": (178, 182, 177, 183, 181, 182, 181, 179, 174, 180),
    "sklearn_breast_cancer": (212, 357),  # malignant, benign
    "synthetic_97_3": (1940, 60),
}
NATURAL = "natural"  # train_per_class: the training pool keeps every example left, at the data's own counts
TABLE_SOURCES = ("csv", "table")
# Sources whose facts come from the user's files: what a config must name for each.
REQUIRED_KEYS = {"torchvision_mnist": ("root",), "torchvision_fashion_mnist": ("root",),
                 "torchvision_cifar10": ("root",), "csv": ("path",), "table": ("path",),
                 "image_folder": ("train_root",)}
ALWAYS_POOLED = ("sklearn_digits", "sklearn_breast_cancer", "synthetic_97_3", "csv", "table")


def n_classes_of(spec: dict) -> int | None:
    """Number of classes, known without preparing the dataset (None when only the data can tell)."""
    if spec["source"] in SOURCE_FACTS:
        return SOURCE_FACTS[spec["source"]]["n_classes"]
    if "n_classes" in spec:
        return spec["n_classes"]
    if spec["source"] in TABLE_SOURCES and "path" in spec:
        return len(class_labels("", spec)[1] or []) or None
    if spec["source"] == "image_folder" and Path(spec["train_root"]).is_dir():
        return sum(1 for entry in Path(spec["train_root"]).iterdir() if entry.is_dir())
    return None


# Settings of a dataset that determine the content of its HDF5 file, per source (with those of all).
CONTENT_KEYS = ("source", "train_per_class", "test_per_class", "validation_per_class", "seed")
TABLE_KEYS = ("path", "label_column", "feature_columns", "categorical_columns", "missing")
SOURCE_CONTENT_KEYS = {
    "sklearn_digits": (), "sklearn_breast_cancer": (), "synthetic_97_3": (),
    "torchvision_mnist": ("root", "copy_from", "split"), "torchvision_fashion_mnist": ("root", "copy_from", "split"),
    "torchvision_cifar10": ("root", "copy_from", "split", "preprocessing"),
    "csv": TABLE_KEYS, "table": TABLE_KEYS,
    "image_folder": ("train_root", "test_root", "n_classes", "image_size", "split"),
}
# The design keys a stratified test set reads. A balanced test set (what every file was before these
# keys existed) reads none of them and its settings leave them out, so that those files, and all that
# was trained on them, stay valid; ``test_kind`` reads a missing ``test`` as this.
STRATIFIED_KEYS = ("test", "test_fraction", "splits", "split_index")
BALANCED_TEST = "balanced"


def test_kind(settings: dict) -> str:
    """``balanced`` or ``stratified``: how the dataset's test set is drawn."""
    return settings.get("test", BALANCED_TEST)


def validation_fraction(settings: dict) -> float:
    """The stratified validation share (0 for none, as before the key existed)."""
    return settings.get("validation_fraction", 0)


def split_design(settings: dict) -> tuple[str, int, int]:
    """(kind, count, index) of a stratified test set: the index-th of count k-fold or hold-out splits;
    a dataset without ``splits`` is the one hold-out (holdout, 1, 1)."""
    splits = settings.get("splits")
    if not splits:
        return "holdout", 1, 1
    if "split_index" not in settings:
        raise ValueError(f"splits: {splits['count']} splits but no split_index: a dataset with splits is one "
                         f"dataset per split (split_datasets), each naming its own")
    return splits["kind"], splits["count"], settings["split_index"]


def split_datasets(name: str, settings: dict) -> dict[str, dict]:
    """A dataset with ``splits`` and no ``split_index`` as the datasets of its splits, one per split
    (``name_split1`` .. ``name_splitK``, each with its ``split_index``), so that a study's repeats can be
    new splits of the same data; any other dataset as itself."""
    if not settings.get("splits") or "split_index" in settings:
        return {name: settings}
    return {f"{name}_split{index}": {**settings, "split_index": index}
            for index in range(1, settings["splits"]["count"] + 1)}


def content_settings(settings: dict) -> dict:
    """The dataset settings its file depends on: other settings (model, protocol, ...) never rebuild it."""
    keys = CONTENT_KEYS + SOURCE_CONTENT_KEYS[settings["source"]]
    if test_kind(settings) != BALANCED_TEST:
        keys += STRATIFIED_KEYS
    if validation_fraction(settings):
        keys += ("validation_fraction",)
    return {key: settings[key] for key in keys if key in settings}


def class_labels(name: str, settings: dict):
    """(labels of the whole pool, class names, problems) where known without preparing the dataset:
    a user's table is read (and checked), an embedded set's counts are known; (None, None, []) else."""
    import numpy as np

    source = settings["source"]
    if source in CLASS_COUNTS:
        counts = CLASS_COUNTS[source]
        return np.repeat(np.arange(len(counts)), counts), None, []
    if source in TABLE_SOURCES and "path" in settings:
        from .datasets.tables import inspect_table

        table, problems = inspect_table(name, settings)
        return (None, None, problems) if table is None else (table.labels, table.class_names, [])
    return None, None, []


def design_errors(name: str, settings: dict) -> list[str]:
    """What the dataset's design asks that its keys or its data cannot give, found before any job runs:
    the keys' combinations, a table's own problems (``datasets.tables``) and every draw made on its
    labels (a class with one example, fewer examples than folds, too few for a balanced test set)."""
    key = f"datasets.{name}"
    stratified = test_kind(settings) == "stratified"
    problems = []
    if stratified and (settings.get("test_root") or (settings["source"] not in ALWAYS_POOLED
                                                     and settings["source"] != "image_folder"
                                                     and settings.get("split") == "official")):
        problems.append(f"{key}.test: stratified draws the test set out of one pool; set split: pooled"
                        f"{' and leave out test_root' if settings.get('test_root') else ''}")
    if not stratified and settings.get("test_per_class") is None:
        problems.append(f"{key}.test_per_class: required for test: balanced")
    if settings.get("splits") and not stratified:
        problems.append(f"{key}.splits: repeated splits are stratified; set test: stratified")
    if "split_index" in settings and not settings.get("splits"):
        problems.append(f"{key}.split_index: names one of the splits that {key}.splits defines; there is none")
    elif "split_index" in settings and settings["split_index"] > settings["splits"]["count"]:
        problems.append(f"{key}.split_index: {settings['split_index']}, but {key}.splits.count is "
                        f"{settings['splits']['count']}")
    if validation_fraction(settings) and settings["validation_per_class"]:
        problems.append(f"{key}: validation_fraction (stratified) and validation_per_class (balanced) both "
                        f"hold out a validation set; set one of them to 0")
    if validation_fraction(settings) and not stratified:
        problems.append(f"{key}.validation_fraction: a stratified validation set needs test: stratified; with "
                        f"a balanced test set use validation_per_class")
    labels, class_names, found = class_labels(name, settings)
    problems.extend(found)
    # A balanced design of an embedded set is checked against its smallest class (config.py); the
    # draws are made for the designs that depend on every class's count.
    new_design = stratified or settings["train_per_class"] == NATURAL or settings["source"] in TABLE_SOURCES
    if problems or labels is None or not new_design:
        return problems
    import numpy as np

    from .datasets import DatasetError, splits

    what = str(settings.get("path", settings["source"]))
    n_classes = int(labels.max()) + 1
    for split_name, split_settings in split_datasets(name, settings).items():  # every split of the data
        try:
            splits.draw_indices(labels, split_settings, np.random.default_rng(settings["seed"]), what, n_classes,
                                class_names)
        except DatasetError as error:
            problems.append(f"datasets.{split_name}: {error}")
            break
    return problems
