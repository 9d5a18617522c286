"""The balanced draws of a dataset's validation set, test set and training pool.

Draw order, all from one generator seeded with the spec's ``seed``: the validation set first (out of
the training data, before anything else), then, for a pooled split, the test set, then the training
pool from what is left; for an official split the training pool, then the test set from the official
test split. Without a validation set the draws are those of format 1, so old files stay valid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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
        named = f"class {label}" if class_names is None or class_names[label] == str(label) else \
            f"class {label} ('{class_names[label]}')"
        if len(members) < per_class and not (up_to and len(members) > 0):
            raise DatasetError(f"{what}: {named} has {len(members)} examples, fewer than the {per_class} asked for")
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def draw_splits(raw: Raw, spec: dict, rng: np.random.Generator, what: str, split: str,
                up_to: bool = False) -> dict:
    """``{split: (data, labels)}`` for the splits the spec asks for.

    ``split="pooled"`` draws every split from the source's training and test data together;
    ``"official"`` draws the validation set and training pool from the training data and the test
    set from the official test split.
    """
    per_class = {"train": spec["train_per_class"], "validation": spec["validation_per_class"],
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
