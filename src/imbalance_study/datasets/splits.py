"""The draws of a dataset's validation set, test set and training pool.

A balanced test set (``test: balanced``, ``test_per_class`` of every class): draw order, all from
one generator seeded with the spec's ``seed``: the validation set first (out of the training data,
before anything else), then, for a pooled split, the test set, then the training pool from what is
left; for an official split the training pool, then the test set from the official test split.
Without a validation set the draws are those of format 1, so old files stay valid.

A stratified test set (``test: stratified``, pooled data only): scikit-learn's
``StratifiedShuffleSplit`` holds out ``test_fraction`` of every class, seeded with ``seed``; with
``splits: {kind: kfold, count: k}`` the ``split_index``-th of ``StratifiedKFold``'s k folds is the
test set instead, and with ``{kind: holdout, count: k}`` the ``split_index``-th of k hold-outs (so
the splits of one dataset are the repeats of a study). The validation set comes next, out of the
rest: ``validation_fraction`` of every class (stratified) or ``validation_per_class`` (balanced).

The training pool is what is left: all of it when ``train_per_class`` is ``natural`` (the data's
own class counts), else a balanced pool of ``train_per_class`` per class.
"""

from __future__ import annotations

import math
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np

from ..source_facts import NATURAL, split_design, test_kind, validation_fraction
from .store import DatasetError

if TYPE_CHECKING:
    from .sources import Raw


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
        if len(members) < per_class and not (up_to and len(members) > 0):
            raise DatasetError(f"{what}: {_named(label, class_names)} has {len(members)} examples, fewer than "
                               f"the {per_class} asked for")
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def draw_splits(raw: Raw, spec: dict, rng: np.random.Generator, what: str, split: str,
                up_to: bool = False) -> dict:
    """``{split: (data, labels)}`` for the splits the spec asks for.

    ``split="pooled"`` draws every split from the source's training and test data together;
    ``"official"`` draws the validation set and training pool from the training data and the test
    set from the official test split.
    """
    n_classes = len(raw.class_names)
    if split == "pooled":
        data, labels = raw.train_data, raw.train_labels
        if raw.test_data is not None:
            data, labels = np.concatenate([data, raw.test_data]), np.concatenate([labels, raw.test_labels])
        drawn = draw_indices(labels, spec, rng, what, n_classes, raw.class_names, up_to)
        return {name: (data[index], labels[index]) for name, index in drawn.items()}
    if test_kind(spec) == "stratified":
        raise DatasetError(f"{what}: test: stratified draws the test set out of one pool; set split: pooled "
                           f"(or leave out test_root) to draw it from both parts")
    from_train, from_test = _draw_official(raw.train_labels, raw.test_labels, _per_class(spec), rng, what, n_classes,
                                           raw.class_names, up_to)
    parts = {name: (raw.train_data[index], raw.train_labels[index]) for name, index in from_train.items()}
    parts["test"] = (raw.test_data[from_test["test"]], raw.test_labels[from_test["test"]])
    return parts


def draw_indices(labels: np.ndarray, spec: dict, rng: np.random.Generator, what: str, n_classes: int,
                 class_names: list[str] | None = None, up_to: bool = False) -> dict[str, np.ndarray]:
    """Indices of each split into one pool of examples with these ``labels``, by the spec's design.

    The labels alone decide them, so a config can be checked (``source_facts``) with the same draw
    the dataset job makes."""
    if test_kind(spec) == "stratified":
        return _draw_stratified(labels, spec, rng, what, n_classes, class_names, up_to)
    return _draw_pooled(labels, _per_class(spec), rng, what, n_classes, class_names, up_to)


def _per_class(spec: dict) -> dict:
    """Examples per class of each balanced split; None for a natural pool, which keeps every example."""
    train = None if spec["train_per_class"] == NATURAL else spec["train_per_class"]
    return {"train": train, "validation": spec["validation_per_class"], "test": spec.get("test_per_class")}


def _named(label: int, class_names: list[str] | None) -> str:
    if class_names is None or class_names[label] == str(label):
        return f"class {label}"
    return f"class {label} ('{class_names[label]}')"


def _stratified_minimum(spec: dict) -> tuple[int, str]:
    """The fewest examples a class needs for the test set to hold at least one, and why."""
    kind, count, _ = split_design(spec)
    if kind == "kfold":
        return count, f"the {count} folds of splits (kind kfold)"
    # StratifiedShuffleSplit gives a class at least floor(n * test_fraction) test examples, and one
    # must stay for training.
    needed = max(2, math.ceil(1 / spec["test_fraction"] - 1e-9))
    return needed, f"a stratified test set of test_fraction {spec['test_fraction']:g}"


def _draw_stratified(labels, spec: dict, rng, what, n_classes, class_names, up_to: bool) -> dict:
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    counts = np.bincount(labels, minlength=n_classes)
    needed, reason = _stratified_minimum(spec)
    short = [f"{_named(label, class_names)} has {counts[label]}" for label in range(n_classes) if counts[label] < needed]
    if short:
        raise DatasetError(f"{what}: {'; '.join(short)} examples, fewer than the {needed} that {reason} needs "
                           f"(every class must be in the test set and the training pool)")
    kind, count, index = split_design(spec)
    if kind == "kfold":
        splitter = StratifiedKFold(n_splits=count, shuffle=True, random_state=spec["seed"])
    else:
        splitter = StratifiedShuffleSplit(n_splits=count, test_size=spec["test_fraction"], random_state=spec["seed"])
    rest, test = next(islice(splitter.split(np.zeros((len(labels), 1)), labels), index - 1, None))
    drawn = {"test": np.sort(test)}
    rest = np.sort(rest)
    held_out = validation_fraction(spec)
    if held_out:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=held_out, random_state=spec["seed"])
        kept, validation = next(splitter.split(np.zeros((len(rest), 1)), labels[rest]))
        drawn["validation"], rest = np.sort(rest[validation]), np.sort(rest[kept])
    elif spec["validation_per_class"]:
        drawn["validation"] = rest[balanced_subset(labels[rest], spec["validation_per_class"], rng,
                                                   f"{what} validation set", n_classes, class_names)]
        rest = np.setdiff1d(rest, drawn["validation"])
    cap = _per_class(spec)["train"]
    drawn["train"] = rest if cap is None else rest[balanced_subset(labels[rest], cap, rng, f"{what} training pool",
                                                                    n_classes, class_names, up_to=up_to)]
    for split, index in drawn.items():
        present = np.bincount(labels[index], minlength=n_classes)
        empty = [_named(label, class_names) for label in range(n_classes) if present[label] == 0]
        if empty:
            raise DatasetError(f"{what} {split} set: no examples of {', '.join(empty)} (of "
                               f"{', '.join(str(counts[label]) for label in range(n_classes) if present[label] == 0)} "
                               f"in all); hold out a larger fraction or use fewer splits")
    return drawn


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
    if per_class["train"] is None:
        drawn["train"] = _natural_pool(available, labels, what, n_classes, class_names)
    else:
        drawn["train"] = available[balanced_subset(labels[available], per_class["train"], rng,
                                                   f"{what} training pool", n_classes, class_names, up_to=up_to)]
    return drawn


def _natural_pool(available: np.ndarray, labels: np.ndarray, what, n_classes, class_names) -> np.ndarray:
    """Every example left: the pool at the data's own counts, refused where a class has none left."""
    left = np.bincount(labels[available], minlength=n_classes)
    empty = [_named(label, class_names) for label in range(n_classes) if left[label] == 0]
    if empty:
        raise DatasetError(f"{what} training pool: no examples of {', '.join(empty)} left after the held-out sets")
    return available


def _draw_official(train_labels, test_labels, per_class: dict, rng, what, n_classes, class_names,
                   up_to: bool) -> tuple[dict, dict]:
    """Validation and training pool from the official training split, test set from the official test split."""
    available = np.arange(len(train_labels))
    from_train = {}
    if per_class["validation"]:
        from_train["validation"] = available[balanced_subset(train_labels, per_class["validation"], rng,
                                                             f"{what} validation set", n_classes, class_names)]
        available = np.setdiff1d(available, from_train["validation"])
    if per_class["train"] is None:
        from_train["train"] = _natural_pool(available, train_labels, what, n_classes, class_names)
    else:
        from_train["train"] = available[balanced_subset(train_labels[available], per_class["train"], rng,
                                                        f"{what} training pool", n_classes, class_names, up_to=up_to)]
    from_test = {"test": balanced_subset(test_labels, per_class["test"], rng, f"{what} test set", n_classes,
                                         class_names)}
    return from_train, from_test
