"""The order in which a run draws its index file's examples (``method.batches``).

``shuffled``: ``batches.EpochShuffler``, epochs of permutations (the paper's; over- and
undersampling change the index file, not the order). ``class_balanced``: ``ClassBalancedSampler``,
each example of a batch drawn by picking a class uniformly, then one of its examples uniformly, with
replacement (the sampler most long-tailed code uses, e.g. Kang et al.'s cRT). Both resume bit for
bit from their ``state_dict``.
"""

from __future__ import annotations

import numpy as np

from .batches import EpochShuffler

BATCHES = ("shuffled", "class_balanced")


class ClassBalancedSampler:
    """Examples of an index file drawn with equal class probability, with replacement.

    The classes are those present in the index file. Each example costs two uniform doubles from
    ``rng`` (the class, then the example within it), drawn as an (n, 2) array: the stream is used in
    the same order however the draws are cut into batches, so ``next_batches(s, b)`` equals ``s``
    calls of ``next_batch(b)`` and a resumed run draws what an uninterrupted one does. ``epoch`` is
    the examples drawn over the index file's size (whole passes' worth, as a shuffled run counts).
    """

    def __init__(self, indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        indices, labels = np.asarray(indices), np.asarray(labels)
        if len(indices) == 0:
            raise ValueError("the index file is empty: nothing to train on")
        if labels.shape != indices.shape:
            raise ValueError(f"class-balanced batches need one label per index ({len(labels)} for {len(indices)})")
        order = np.argsort(labels, kind="stable")
        self.by_class = indices[order]  # the index file grouped by class, in file order within a class
        _, self.starts, self.counts = np.unique(labels[order], return_index=True, return_counts=True)
        self.size, self.rng, self.drawn = len(indices), rng, 0

    @property
    def epoch(self) -> int:
        return self.drawn // self.size

    def next_batch(self, size: int) -> np.ndarray:
        uniforms = self.rng.random((size, 2))
        # floor(u * n) lies in 0..n-1 for u in [0, 1); the minimum guards the rounding of u * n up to n.
        classes = np.minimum((uniforms[:, 0] * len(self.counts)).astype(np.int64), len(self.counts) - 1)
        within = np.minimum((uniforms[:, 1] * self.counts[classes]).astype(np.int64), self.counts[classes] - 1)
        self.drawn += size
        return self.by_class[self.starts[classes] + within]

    def next_batches(self, steps: int, size: int) -> np.ndarray:
        return self.next_batch(steps * size).reshape(steps, size)

    def state_dict(self) -> dict:
        """Plain numbers and strings: what ``torch.load(..., weights_only=True)`` reads."""
        return {"rng": self.rng.bit_generator.state, "drawn": self.drawn, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        if "drawn" not in state:
            raise ValueError("the resume state holds a shuffled data order, not a class-balanced one")
        self.rng.bit_generator.state = state["rng"]
        self.drawn = int(state["drawn"])


def data_order(trainee, pool_labels: np.ndarray):
    """The run's data order (``method.batches``) over its index file; ``pool_labels`` are the labels
    of the dataset's pool, which the index file points into."""
    batches = trainee.run.method.batches
    if batches == "shuffled":
        return EpochShuffler(trainee.indices, trainee.run.data_rng())
    if batches == "class_balanced":
        if pool_labels is None:
            raise ValueError("method.batches class_balanced: the batches give no labels of the pool")
        return ClassBalancedSampler(trainee.indices, np.asarray(pool_labels)[trainee.indices], trainee.run.data_rng())
    raise ValueError(f"methods.{trainee.run.method.name}.batches: '{batches}' is not one of {', '.join(BATCHES)}")
