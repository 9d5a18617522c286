"""A training protocol: iterations, batch size, optimiser settings, learning-rate policy, checkpoints.

Kept free of PyTorch so that checking a config (which Snakemake does in every job's process) does
not pay for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LR_POLICIES = ("fixed", "inv", "multistep", "poly")
MOMENTUM_FORMS = ("caffe", "pytorch")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Protocol:
    """A protocol as the config gives it, every setting present (the schema holds the defaults)."""

    iterations: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    lr_policy: dict
    momentum_form: str
    checkpoints: tuple[int, ...]
    resume_every: int
    precision: str  # bf16: forward passes under bfloat16 autocast (weights and updates stay fp32)

    def __post_init__(self):
        if self.lr_policy["name"] not in LR_POLICIES:
            raise ValueError(f"lr_policy.name: '{self.lr_policy['name']}' is not one of {LR_POLICIES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: '{self.precision}' is not one of {PRECISIONS}")
        if self.momentum_form not in MOMENTUM_FORMS:
            raise ValueError(f"momentum_form: '{self.momentum_form}' is not one of {MOMENTUM_FORMS}")
        outside = [c for c in self.checkpoints if not 0 < c <= self.iterations]
        if outside:
            raise ValueError(f"checkpoints {outside} lie outside 1..{self.iterations} iterations")

    @classmethod
    def from_config(cls, settings: dict) -> "Protocol":
        known = {key: value for key, value in settings.items() if key in cls.__dataclass_fields__}
        known["checkpoints"] = tuple(checkpoint_iterations(settings.get("checkpoints"), settings["iterations"]))
        return cls(**known)

    @classmethod
    def from_dict(cls, settings: dict) -> "Protocol":
        """The inverse of ``dataclasses.asdict``: a resolved protocol as a job's params carry it."""
        return cls(**{**settings, "checkpoints": tuple(settings["checkpoints"])})

    def learning_rate(self, iteration: int) -> float:
        """Caffe's policies, as functions of the number of updates already made."""
        policy = self.lr_policy
        if policy["name"] == "inv":
            return self.lr * (1.0 + policy["gamma"] * iteration) ** (-policy["power"])
        if policy["name"] == "poly":  # power 1: linear decay to zero at the last iteration (ResNet-10's)
            return self.lr * (1.0 - iteration / self.iterations) ** policy["power"]
        if policy["name"] == "multistep":
            passed = sum(iteration >= step for step in policy["steps"])
            return self.lr * policy["gamma"] ** passed
        return self.lr


def checkpoint_iterations(schedule, iterations: int) -> list[int]:
    """Resolve a checkpoint schedule: an explicit list, or ``{spacing: linear|log, count: n}``.

    The last iteration is always a checkpoint. Log spacing is dense early, where the underfitting of
    minority classes happens, and sparse late.
    """
    if schedule is None:
        points = []
    elif isinstance(schedule, (list, tuple)):
        points = [int(point) for point in schedule]
    else:
        count = int(schedule["count"])
        if schedule["spacing"] == "log":
            start = schedule.get("first", max(1, iterations // 1000))
            points = np.unique(np.round(np.geomspace(start, iterations, count)).astype(int)).tolist()
        else:
            points = np.unique(np.round(np.linspace(iterations / count, iterations, count)).astype(int)).tolist()
    return sorted(set(points) | {iterations})
