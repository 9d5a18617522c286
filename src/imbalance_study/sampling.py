"""Random over- and undersampling of an imbalanced index file.

``ratio`` is the imbalance ratio left after sampling: 1 balances fully (the paper's main methods);
a larger value samples only part of the way (the paper's Figure 7).
"""

from __future__ import annotations

import math

import numpy as np

from .imbalance import stable_hash

SAMPLERS = ("none", "over", "under")


class SamplingError(ValueError):
    pass


def index_name(sampler: str, ratio: float = 1.0) -> str:
    """File stem of the index file a sampler produces; settings that change the file change its name."""
    if sampler == "none":
        return "imbalanced"
    if sampler not in SAMPLERS:
        raise SamplingError(f"unknown sampler '{sampler}', expected one of {SAMPLERS}")
    return sampler if ratio == 1 else f"{sampler}-ratio{ratio:g}"


def parse_index_name(name: str) -> tuple[str, float]:
    if name == "imbalanced":
        return "none", 1.0
    sampler, _, ratio = name.partition("-ratio")
    if sampler not in ("over", "under"):
        raise SamplingError(f"'{name}' is not an index name (imbalanced, over, under, over-ratio10, ...)")
    return sampler, float(ratio) if ratio else 1.0


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


def sample(indices: np.ndarray, pool_labels: np.ndarray, sampler: str, ratio: float, seed: int, context: str) -> np.ndarray:
    """Apply ``sampler`` deterministically: the random stream depends on seed, context and sampler."""
    if ratio < 1:
        raise SamplingError(f"ratio={ratio}: the imbalance ratio after sampling must be at least 1")
    rng = np.random.default_rng([seed, stable_hash(context), stable_hash(index_name(sampler, ratio))])
    if sampler == "over":
        return oversample(indices, pool_labels, rng, ratio)
    if sampler == "under":
        return undersample(indices, pool_labels, rng, ratio)
    if sampler == "none":
        return indices
    raise SamplingError(f"unknown sampler '{sampler}', expected one of {SAMPLERS}")


def write_index_files(pool_labels: np.ndarray, profile_name: str, cap: int, seeds, minority_rule: str,
                      index_names, path_of, context: str) -> dict:
    """Every index file of one imbalanced profile: per seed, the imbalanced set and each sampled
    version named in ``index_names``, written to ``path_of(seed, name)``. Returns their manifest:
    per seed and name, the path, its sha256 and the class counts."""
    from .atomic import file_sha256, write_npy
    from .imbalance import class_counts_of, imbalanced_indices, parse_profile

    profile = parse_profile(profile_name)
    n_classes = int(pool_labels.max()) + 1
    manifest: dict = {}
    for seed in seeds:
        imbalanced = imbalanced_indices(pool_labels, profile, cap, int(seed), minority_rule)
        for name in ["imbalanced", *(name for name in index_names if name != "imbalanced")]:
            sampler, ratio = parse_index_name(name)
            indices = sample(imbalanced, pool_labels, sampler, ratio, int(seed), context=context)
            path = path_of(seed, name)
            write_npy(path, indices)
            manifest.setdefault(str(seed), {})[name] = {
                "path": str(path), "sha256": file_sha256(path),
                "class_counts": class_counts_of(indices, pool_labels, n_classes).tolist()}
    return manifest
