"""Random over- and undersampling of an imbalanced index file.

``ratio`` is the imbalance ratio left after sampling: 1 balances fully (the paper's main methods);
a larger value samples only part of the way (the paper's Figure 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .imbalance import number, stable_hash

SAMPLERS = ("none", "over", "under")


class SamplingError(ValueError):
    pass


@dataclass(frozen=True)
class IndexFile:
    """An index file of an imbalanced set: the set itself (sampler none) or a sampled version of it.

    ``name`` is the file's stem, made here and nowhere else: settings that change the file change it.
    """

    sampler: str
    ratio: float = 1.0

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise SamplingError(f"unknown sampler '{self.sampler}', expected one of {SAMPLERS}")
        if self.ratio < 1:
            raise SamplingError(f"ratio={self.ratio}: the imbalance ratio after sampling must be at least 1")

    @property
    def name(self) -> str:
        if self.sampler == "none":
            return "imbalanced"
        return self.sampler if self.ratio == 1 else f"{self.sampler}-ratio{number(self.ratio)}"


IMBALANCED = IndexFile("none")


def _groups(indices: np.ndarray, pool_labels: np.ndarray) -> dict[int, np.ndarray]:
    labels = pool_labels[indices]
    return {int(label): indices[labels == label] for label in np.unique(labels)}


def oversample(indices: np.ndarray, pool_labels: np.ndarray, rng: np.random.Generator, ratio: float = 1.0) -> np.ndarray:
    """Replicate random examples of each smaller class until it has at least ``max / ratio`` examples."""
    groups = _groups(indices, pool_labels)
    largest = max(len(members) for members in groups.values())
    target = math.ceil(largest / ratio)
    parts = [indices]
    for label in sorted(groups):
        shortfall = target - len(groups[label])
        if shortfall > 0:
            parts.append(rng.choice(groups[label], size=shortfall, replace=True))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def undersample(indices: np.ndarray, pool_labels: np.ndarray, rng: np.random.Generator, ratio: float = 1.0) -> np.ndarray:
    """Drop random examples of each larger class until it has at most ``min * ratio`` examples."""
    groups = _groups(indices, pool_labels)
    smallest = min(len(members) for members in groups.values())
    target = max(1, math.floor(smallest * ratio))
    parts = []
    for label in sorted(groups):
        members = groups[label]
        parts.append(members if len(members) <= target else rng.choice(members, size=target, replace=False))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def sample(indices: np.ndarray, pool_labels: np.ndarray, index: IndexFile, seed: int, context: str) -> np.ndarray:
    """The index file ``index`` of an imbalanced set, drawn deterministically: the random stream
    depends on the seed, the context (dataset and profile) and the file's name."""
    rng = np.random.default_rng([seed, stable_hash(context), stable_hash(index.name)])
    if index.sampler == "over":
        return oversample(indices, pool_labels, rng, index.ratio)
    if index.sampler == "under":
        return undersample(indices, pool_labels, rng, index.ratio)
    return indices


def write_index_files(pool_labels: np.ndarray, profile, cap: int, data_seeds: dict, minority_rule: str,
                      index_files, paths: dict, context: str) -> dict:
    """Every index file of one imbalanced profile: per seed, the imbalanced set and each sampled
    version in ``index_files``, drawn with the seed's data seed (``data_seeds[str(seed)]``: the seed
    itself, or a seed shared by repeats of the same data) and written to ``paths[str(seed)][name]``.
    Returns their manifest: per seed and name, the path, its sha256 and the class counts."""
    from .atomic import file_sha256, write_npy
    from .imbalance import class_counts_of, imbalanced_indices

    n_classes = int(pool_labels.max()) + 1
    manifest: dict = {}
    for seed, data_seed in data_seeds.items():
        imbalanced = imbalanced_indices(pool_labels, profile, cap, int(data_seed), minority_rule)
        for index in [IMBALANCED, *(index for index in index_files if index != IMBALANCED)]:
            indices = sample(imbalanced, pool_labels, index, int(data_seed), context=context)
            path = paths[str(seed)][index.name]
            write_npy(path, indices)
            manifest.setdefault(str(seed), {})[index.name] = {
                "path": str(path), "sha256": file_sha256(path),
                "class_counts": class_counts_of(indices, pool_labels, n_classes).tolist()}
    return manifest
