"""Imbalance profiles and the imbalanced index files drawn from a balanced training pool.

A profile is written as one path component, so that it can be a Snakemake wildcard:
``step-mu0.2-rho10`` (a fraction ``mu`` of the classes are minority classes with ``cap / rho``
examples each; the others keep ``cap``).

Index files hold sorted int64 indices into the dataset's training pool.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

PROFILE_KINDS = ("step",)
MINORITY_RULES = ("random", "lowest")
_STEP_PATTERN = re.compile(r"^step-mu(?P<mu>[0-9.]+)-rho(?P<rho>[0-9.]+)$")


class ProfileError(ValueError):
    """An imbalance profile that cannot be realised; the message names the offending value."""


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Profile:
    kind: str
    rho: float
    mu: float | None = None

    @property
    def name(self) -> str:
        return f"step-mu{_number(self.mu)}-rho{_number(self.rho)}"

    def n_minority(self, n_classes: int) -> int:
        exact = self.mu * n_classes
        if abs(exact - round(exact)) > 1e-9:
            raise ProfileError(
                f"mu={_number(self.mu)} times {n_classes} classes is {exact:g}, not a whole number of classes"
            )
        return int(round(exact))

    def class_counts(self, n_classes: int, cap: int, minority_classes: np.ndarray) -> np.ndarray:
        """Examples per class: the cap for majority classes, ``max(1, floor(cap / rho))`` for minority ones.

        Flooring keeps the realised ratio at or above ``rho`` when ``rho`` does not divide ``cap``.
        """
        counts = np.full(n_classes, cap, dtype=np.int64)
        counts[minority_classes] = max(1, int(np.floor(cap / self.rho)))
        return counts


def step(mu: float, rho: float) -> Profile:
    if not 0 <= mu <= 1:
        raise ProfileError(f"mu={mu}: must lie in [0, 1]")
    if rho < 1:
        raise ProfileError(f"rho={rho}: the majority/minority ratio must be at least 1")
    return Profile("step", rho=float(rho), mu=float(mu))


def parse_profile(name: str) -> Profile:
    match = _STEP_PATTERN.match(name)
    if match is None:
        raise ProfileError(f"'{name}' is not a profile name (expected e.g. step-mu0.2-rho10)")
    return step(float(match["mu"]), float(match["rho"]))


def stable_hash(text: str) -> int:
    """A hash that, unlike ``hash()``, is the same in every process."""
    return zlib.crc32(text.encode())


def minority_classes(n_classes: int, n_minority: int, rule: str, seed: int) -> np.ndarray:
    """Which classes are minority: drawn per seed (the MNIST protocol) or the lowest labels (CIFAR-10's).

    The draw depends only on the seed and the number of minority classes, so one seed keeps the same
    minority classes at every rho: curves over rho compare like with like.
    """
    if rule == "lowest":
        return np.arange(n_minority)
    if rule == "random":
        rng = np.random.default_rng([seed, stable_hash("minority"), n_minority])
        return np.sort(rng.choice(n_classes, size=n_minority, replace=False))
    raise ProfileError(f"minority_classes: unknown rule '{rule}', expected one of {MINORITY_RULES}")


def imbalanced_indices(pool_labels: np.ndarray, profile: Profile, cap: int, seed: int,
                       minority_rule: str = "random") -> np.ndarray:
    """Indices into the pool forming the imbalanced training set for ``profile`` and ``seed``.

    Each class is subsampled from one fixed permutation per (seed, class), so the set at a larger
    rho is contained in the set at a smaller one.
    """
    classes = np.unique(pool_labels)
    n_classes = len(classes)
    if not np.array_equal(classes, np.arange(n_classes)):
        raise ProfileError(f"pool labels must be 0..K-1, found {classes.tolist()}")
    minority = minority_classes(n_classes, profile.n_minority(n_classes), minority_rule, seed)
    counts = profile.class_counts(n_classes, cap, minority)
    chosen = []
    for label in classes:
        members = np.flatnonzero(pool_labels == label)
        if len(members) < counts[label]:
            raise ProfileError(f"class {label} has {len(members)} examples in the pool, fewer than the cap {cap}")
        order = np.random.default_rng([seed, stable_hash("class"), int(label)]).permutation(members)
        chosen.append(order[: counts[label]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def class_counts_of(indices: np.ndarray, pool_labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(pool_labels[indices], minlength=n_classes)


def load_indices(path, pool_size: int) -> np.ndarray:
    """Read an index file, refusing one that is unreadable or points outside the pool."""
    try:
        indices = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ProfileError(f"{path}: cannot read the index file ({error})") from error
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ProfileError(f"{path}: an index file holds a 1-d integer array, found {indices.dtype} {indices.shape}")
    if len(indices) and (indices.min() < 0 or indices.max() >= pool_size):
        raise ProfileError(f"{path}: indices must lie in 0..{pool_size - 1}, found {indices.min()}..{indices.max()}")
    return indices
