"""Imbalance profiles and the imbalanced index files drawn from a balanced training pool.

A profile is named by one path component, so that it can be a Snakemake wildcard (the name is made
here and never parsed back: the plan maps names to profiles):

- ``step-mu0.2-rho10``: a fraction ``mu`` of the classes are minority classes with ``cap / rho``
  examples each; the others keep ``cap`` (the paper's step imbalance);
- ``linear-rho10``: counts fall in equal steps from ``cap`` to ``cap / rho`` (the paper's linear
  imbalance);
- ``exponential-rho10``: the long tail of CIFAR-10-LT, ``n_i = cap * rho ** (-i / (K - 1))``;
- ``natural``: the training pool as it is, at the data's own class counts (a naturally imbalanced
  table or folder: ``train_per_class: natural``).

On a natural pool (``cap`` is ``"natural"``) the other profiles are applied on top of the data's own
counts, to make a natural set more imbalanced: classes are ranked by their natural counts, the
profile's counts are computed with the largest class as the cap, and no class gets more than it has
(a step profile leaves the largest classes whole and cuts the smallest ``mu`` to ``largest / rho``).

For linear and exponential profiles, classes are ranked from the largest to the smallest by the
same rule that picks minority classes: a random order per seed, or the lowest labels smallest.

Index files hold sorted int64 indices into the dataset's training pool.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

PROFILE_KINDS = ("step", "linear", "exponential", "natural")
NATURAL = "natural"  # the cap of a natural pool (datasets.*.train_per_class), and the profile of its own counts
MINORITY_RULES = ("random", "lowest")


class ProfileError(ValueError):
    """An imbalance profile that cannot be realised; the message names the offending value."""


def number(value: float) -> str:
    """A number as it appears in file names: the shortest text that reads back as the same float,
    never in exponent form (``10``, ``0.2``, ``0.3333333333``, ``1000000``), so distinct values never
    share a name."""
    return np.format_float_positional(float(value), trim="-")


@dataclass(frozen=True)
class Profile:
    kind: str
    rho: float
    mu: float | None = None

    @cached_property
    def name(self) -> str:
        if self.kind == "step":
            return f"step-mu{number(self.mu)}-rho{number(self.rho)}"
        if self.kind == NATURAL:
            return NATURAL
        return f"{self.kind}-rho{number(self.rho)}"

    def n_minority(self, n_classes: int) -> int | None:
        """Minority classes of a step profile; None for linear and exponential ones (no single count)."""
        if self.kind != "step":
            return None
        exact = self.mu * n_classes
        if abs(exact - round(exact)) > 1e-9:
            raise ProfileError(
                f"mu={number(self.mu)} times {n_classes} classes is {exact:g}, not a whole number of classes"
            )
        return int(round(exact))

    def ranked_counts(self, n_classes: int, cap: int) -> np.ndarray:
        """Examples per class from the smallest class to the largest, never fewer than one.

        Counts are floored, which keeps the realised ratio at or above ``rho``.
        """
        if self.kind == "step":
            n_minority = self.n_minority(n_classes)
            counts = np.full(n_classes, cap, dtype=np.int64)
            counts[:n_minority] = np.floor(cap / self.rho)
        else:
            position = np.arange(n_classes)[::-1] / max(1, n_classes - 1)  # 1 for the smallest, 0 for the largest
            if self.kind == "linear":
                exact = cap - (cap - cap / self.rho) * position
            else:
                exact = cap * self.rho ** (-position)
            # Guard against 99.99999 flooring to 99 where the exact count is whole.
            counts = np.floor(exact + 1e-9).astype(np.int64)
        return np.maximum(counts, 1)


def step(mu: float, rho: float) -> Profile:
    if not 0 <= mu <= 1:
        raise ProfileError(f"mu={mu}: must lie in [0, 1]")
    if rho < 1:
        raise ProfileError(f"rho={rho}: the majority/minority ratio must be at least 1")
    return Profile("step", rho=float(rho), mu=float(mu))


def ramp(kind: str, rho: float) -> Profile:
    """A linear or exponential profile."""
    if kind not in ("linear", "exponential"):
        raise ProfileError(f"unknown profile kind '{kind}', expected one of {PROFILE_KINDS}")
    if rho < 1:
        raise ProfileError(f"rho={rho}: the majority/minority ratio must be at least 1")
    return Profile(kind, rho=float(rho))


def natural() -> Profile:
    """The data's own counts (its imbalance ratio is the data's, reported from the set drawn)."""
    return Profile(NATURAL, rho=1.0)


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


def class_ranking(profile: Profile, n_classes: int, rule: str, seed: int, short: np.ndarray) -> np.ndarray:
    """Classes ordered from the one that gets the fewest examples to the one that gets the most.

    ``short`` lists classes with fewer examples than the cap: they can never be majority classes
    (ImageNet's rule), so they come first, and the rule orders the rest.
    """
    if rule not in MINORITY_RULES:
        raise ProfileError(f"minority_classes: unknown rule '{rule}', expected one of {MINORITY_RULES}")
    if profile.kind == "step" and len(short) == 0:
        minority = minority_classes(n_classes, profile.n_minority(n_classes), rule, seed)
        return np.concatenate([minority, np.setdiff1d(np.arange(n_classes), minority)])
    rest = np.setdiff1d(np.arange(n_classes), short)
    if rule == "random":
        rest = np.random.default_rng([seed, stable_hash("ranking")]).permutation(rest)
    return np.concatenate([np.sort(short), rest])


def class_counts(profile: Profile, n_classes: int, cap: int, rule: str, seed: int,
                 short: np.ndarray = np.array([], dtype=np.int64)) -> np.ndarray:
    """Examples per class (indexed by label) for ``profile``."""
    counts = np.empty(n_classes, dtype=np.int64)
    counts[class_ranking(profile, n_classes, rule, seed, short)] = profile.ranked_counts(n_classes, cap)
    return counts


def minority_mask(counts: np.ndarray) -> np.ndarray:
    """Which classes count as minority in per-group scores.

    With two distinct counts (step imbalance, binary data) the smaller classes; with more (linear,
    exponential, partial sampling) the classes below the median count. A balanced set has none.
    """
    counts = np.asarray(counts)
    if len(np.unique(counts)) <= 2:
        return counts < counts.max()
    return counts < np.median(counts)


def natural_counts(profile: Profile, available: np.ndarray) -> np.ndarray:
    """Examples per class of ``profile`` applied on top of a natural pool's counts ``available``:
    ranked by the natural counts (ties by label), the profile's counts with the largest class as the
    cap, never more than a class has."""
    if profile.kind == NATURAL:
        return available.copy()
    ranking = np.argsort(available, kind="stable")
    counts = np.empty(len(available), dtype=np.int64)
    counts[ranking] = np.minimum(profile.ranked_counts(len(available), int(available.max())), available[ranking])
    return counts


def imbalanced_indices(pool_labels: np.ndarray, profile: Profile, cap: int | str, seed: int,
                       minority_rule: str = "random") -> np.ndarray:
    """Indices into the pool forming the imbalanced training set for ``profile`` and ``seed``.

    Each class is subsampled from one fixed permutation per (seed, class), so the set at a larger
    rho is contained in the set at a smaller one. A class with fewer pool examples than ``cap`` is
    always among the smallest classes, and must hold at least the count the profile gives it. A
    natural pool (``cap`` ``"natural"``) keeps its own counts under the natural profile, and is the
    reference of the others (``natural_counts``).
    """
    classes = np.unique(pool_labels)
    n_classes = len(classes)
    if not np.array_equal(classes, np.arange(n_classes)):
        raise ProfileError(f"pool labels must be 0..K-1, found {classes.tolist()}")
    available = np.bincount(pool_labels, minlength=n_classes)
    if cap == NATURAL:
        counts = natural_counts(profile, available)
    elif profile.kind == NATURAL:
        counts = np.minimum(available, int(cap))  # a balanced pool's own counts: the pool itself
    else:
        short = np.flatnonzero(available < cap)
        counts = class_counts(profile, n_classes, cap, minority_rule, seed, short)
    chosen = []
    for label in classes:
        if available[label] < counts[label]:
            raise ProfileError(f"profile {profile.name}: class {label} needs {counts[label]} examples but the "
                               f"pool has {available[label]} (cap {cap})")
        members = np.flatnonzero(pool_labels == label)
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
