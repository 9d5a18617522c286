"""The size of each run's training set, known when the study is planned: what a protocol given in
epochs needs to become a number of iterations (``protocol.Protocol.from_config(settings, examples)``).

An imbalanced set's class counts follow from its profile and its dataset's pool: a balanced pool has
``train_per_class`` examples of every class, a natural pool the counts the dataset's draw leaves
(read from the data where ``source_facts`` can: embedded sets and tables). Its sampled versions are
counted by the samplers themselves, run on labels alone. Image folders are listed only when prepared,
so an epoch protocol cannot be planned on them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import imbalance, sampling, source_facts


class UnknownSize(ValueError):
    """A training set whose size cannot be known before its dataset is prepared."""


@lru_cache(maxsize=None)
def _natural_pool_counts(name: str, settings_text: str) -> tuple[int, ...]:
    import json

    from .datasets import splits

    settings = json.loads(settings_text)
    labels, class_names, problems = source_facts.class_labels(name, settings)
    if labels is None or problems:
        raise UnknownSize(f"datasets.{name}: the natural class counts cannot be read before the dataset is "
                          f"prepared{': ' + '; '.join(problems) if problems else ''}")
    n_classes = int(labels.max()) + 1
    drawn = splits.draw_indices(labels, settings, np.random.default_rng(settings["seed"]),
                                str(settings.get("path", settings["source"])), n_classes, class_names)
    return tuple(np.bincount(labels[drawn["train"]], minlength=n_classes).tolist())


def pool_counts(name: str, settings: dict) -> np.ndarray:
    """Examples per class of the dataset's training pool."""
    import json

    if settings["train_per_class"] == imbalance.NATURAL:
        return np.array(_natural_pool_counts(name, json.dumps(settings, sort_keys=True)))
    n_classes = source_facts.n_classes_of(settings)
    if n_classes is None or settings["source"] == "image_folder":
        raise UnknownSize(f"datasets.{name}: the size of its classes is known only once its images are listed")
    return np.full(n_classes, settings["train_per_class"], dtype=np.int64)


def imbalanced_counts(name: str, settings: dict, profile: imbalance.Profile) -> np.ndarray:
    """Examples per class of the dataset's imbalanced set for ``profile`` (which class gets which count
    depends on the seed; the counts themselves do not)."""
    pool = pool_counts(name, settings)
    if settings["train_per_class"] == imbalance.NATURAL:
        return imbalance.natural_counts(profile, pool)
    if profile.kind == imbalance.NATURAL:
        return pool
    return imbalance.class_counts(profile, len(pool), int(settings["train_per_class"]), "lowest", 0)


def training_examples(name: str, settings: dict, profile: imbalance.Profile, index: sampling.IndexFile) -> int:
    """The number of examples in the index file ``index`` of the dataset's imbalanced set for ``profile``."""
    counts = imbalanced_counts(name, settings, profile)
    if index.sampler == "none":
        return int(counts.sum())
    labels = np.repeat(np.arange(len(counts)), counts)
    return len(sampling.sample(np.arange(len(labels)), labels, index, seed=0, context="size"))
