"""A training protocol: its length, batch size, optimiser settings, learning-rate policy, checkpoints.

A protocol is given in iterations or in epochs (``epochs`` instead of ``iterations``). An epoch
protocol gives its length, ``lr_policy.steps``, ``lr_policy.warmup`` and its checkpoints (a list,
or log spacing's ``first``) in epochs, and resolves to iterations once the run's training-set size
is known (``Protocol.from_config(settings, examples)``): e epochs end after ``ceil(e * examples /
batch_size)`` updates, the first update whose batch reaches past e passes over the set (batches run
across epoch ends, as ``batches.EpochShuffler`` draws them). ``resume_every`` and the ``inv``
policy's gamma stay per iteration. Log and linear spacing are the same in either unit up to
rounding, so they are spaced over iterations from ``first`` converted; ``{spacing: epoch}`` puts a
checkpoint at every epoch's end.

Linear warm-up (``lr_policy.warmup: W``, in the protocol's unit, W iterations once resolved): the
update made after i updates (i = 0, 1, ...) uses the policy's rate times ``min(1, (i + 1) / W)``, so
the first update uses 1/W of it and update W onwards all of it. This is the per-iteration form of
Goyal et al. (2017) and of Cao et al.'s LDAM-DRW code, whose per-epoch ramp ``lr * (epoch + 1) /
W`` it meets at the last update of each warm-up epoch.

Augmentation (``augment: {crop_padding, flip}``, ``augment``'s module): a protocol carries it only
when it is on (``AugmentedProtocol``), so a protocol without it keeps the fields it had before.

Kept free of PyTorch so that checking a config (which Snakemake does in every job's process) does
not pay for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LR_POLICIES = ("fixed", "inv", "multistep", "poly")
MOMENTUM_FORMS = ("caffe", "pytorch")
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class Protocol:
    """A protocol in iterations with SGD, every setting present (the schema holds the defaults).

    The settings added later (``optimizer``, ``betas``, ``eps``, ``epochs``, ``examples``) are
    fields of ``ExtendedProtocol`` only, ``augment`` of ``AugmentedProtocol`` only: a protocol that
    uses none of them resolves to this class, whose ``dataclasses.asdict`` (a job's params, a run's
    fingerprint) is what it was before they existed, so runs trained then stay valid. Here they read
    as SGD in iterations without augmentation.
    """

    iterations: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    lr_policy: dict  # "warmup" (in iterations once resolved) is present only where it is above 0
    momentum_form: str
    checkpoints: tuple[int, ...]
    resume_every: int
    precision: str  # bf16: forward passes under bfloat16 autocast (weights and updates stay fp32)

    optimizer = "sgd"
    betas = None
    eps = None
    epochs = None
    examples = None
    augment = None  # {"crop_padding": p, "flip": bool}, only when on (AugmentedProtocol)

    def __post_init__(self):
        if self.lr_policy["name"] not in LR_POLICIES:
            raise ValueError(f"lr_policy.name: '{self.lr_policy['name']}' is not one of {LR_POLICIES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: '{self.precision}' is not one of {PRECISIONS}")
        if self.momentum_form not in MOMENTUM_FORMS:
            raise ValueError(f"momentum_form: '{self.momentum_form}' is not one of {MOMENTUM_FORMS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: '{self.optimizer}' is not one of {OPTIMIZERS}")
        outside = [c for c in self.checkpoints if not 0 < c <= self.iterations]
        if outside:
            raise ValueError(f"checkpoints {outside} lie outside 1..{self.iterations} iterations")

    @classmethod
    def from_config(cls, settings: dict, examples: int | None = None) -> "Protocol":
        """The protocol a run trains with. ``settings``: the config's protocol (with a method's
        overrides), defaults filled in; ``examples``: the size of the run's training set, which an
        epoch protocol needs to resolve to iterations (an iteration protocol ignores it)."""
        unit = _Unit.of(settings, examples)
        policy = {key: value for key, value in settings["lr_policy"].items() if key != "warmup"}
        if "steps" in policy and unit.epochs is not None:
            policy["steps"] = [unit.iteration(step, "lr_policy.steps") for step in policy["steps"]]
        warmup = settings["lr_policy"].get("warmup", 0)
        if warmup:  # none (0) leaves lr_policy as it was before warm-up existed
            policy["warmup"] = unit.iteration(warmup, "lr_policy.warmup")
        known = {key: value for key, value in settings.items() if key in Protocol.__dataclass_fields__}
        known.update(iterations=unit.iterations, lr_policy=policy,
                     checkpoints=tuple(unit.checkpoints(settings.get("checkpoints"))))
        optimizer = settings.get("optimizer", "sgd")
        augment = _augment(settings.get("augment"))
        if optimizer == "sgd" and unit.epochs is None and augment is None:
            return Protocol(**known)
        adam = optimizer != "sgd"  # betas and eps mean nothing to SGD: left out, they change no run
        extended = dict(optimizer=optimizer, betas=tuple(settings["betas"]) if adam else None,
                        eps=settings["eps"] if adam else None, epochs=unit.epochs,
                        examples=examples if unit.epochs is not None else None)
        if augment is None:  # off: the fields of before augmentation existed
            return ExtendedProtocol(**known, **extended)
        return AugmentedProtocol(**known, **extended, augment=augment)

    @classmethod
    def check(cls, settings: dict) -> None:
        """Raise what ``from_config`` would for any training-set size: an epoch protocol is checked
        in epochs (resolved with one update per epoch), without knowing its set's size."""
        cls.from_config(settings, examples=settings.get("batch_size") if "epochs" in settings else None)

    @classmethod
    def from_dict(cls, settings: dict) -> "Protocol":
        """The inverse of ``dataclasses.asdict``: a resolved protocol as a job's params carry it."""
        settings = {**settings, "checkpoints": tuple(settings["checkpoints"])}
        if "optimizer" not in settings:
            return Protocol(**settings)
        settings["betas"] = tuple(settings["betas"]) if settings["betas"] else None
        return (AugmentedProtocol if "augment" in settings else ExtendedProtocol)(**settings)

    def learning_rate(self, iteration: int) -> float:
        """Caffe's policies, as functions of the number of updates already made, after the warm-up's
        ramp (the module's docstring)."""
        policy = self.lr_policy
        ramp = min(1.0, (iteration + 1) / policy["warmup"]) if "warmup" in policy else 1.0
        if policy["name"] == "inv":
            return ramp * self.lr * (1.0 + policy["gamma"] * iteration) ** (-policy["power"])
        if policy["name"] == "poly":  # power 1: linear decay to zero at the last iteration (ResNet-10's)
            return ramp * self.lr * (1.0 - iteration / self.iterations) ** policy["power"]
        if policy["name"] == "multistep":
            passed = sum(iteration >= step for step in policy["steps"])
            return ramp * self.lr * policy["gamma"] ** passed
        return ramp * self.lr


@dataclass(frozen=True)
class ExtendedProtocol(Protocol):
    """A protocol that sets any of the settings added later: Adam or AdamW, or a length in epochs.

    ``betas`` and ``eps``: Adam's (None for SGD). ``epochs``: the length as the config gave it (None
    in iterations); ``examples``: the training-set size it was resolved with (None in iterations).
    Both are kept so that the fingerprint changes when either does.
    """

    optimizer: str = "sgd"
    betas: tuple[float, float] | None = None
    eps: float | None = None
    epochs: int | None = None
    examples: int | None = None


@dataclass(frozen=True)
class AugmentedProtocol(ExtendedProtocol):
    """A protocol that augments its training batches (``augment``'s module): ``augment`` is
    ``{"crop_padding": p, "flip": bool}``, present only when on (p > 0 or flip), so that protocols
    without augmentation (plain or extended) keep exactly the fields, and fingerprints, of before."""

    augment: dict | None = None

    def __post_init__(self):
        super().__post_init__()
        if set(self.augment or ()) != {"crop_padding", "flip"}:
            raise ValueError(f"augment: {self.augment} must give crop_padding and flip")


def _augment(settings: dict | None) -> dict | None:
    """A protocol's ``augment`` setting as the protocol carries it: None when off (or not given)."""
    settings = settings or {}
    padding, flip = settings.get("crop_padding", 0), bool(settings.get("flip", False))
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"augment.crop_padding: {padding!r} must be a whole number of pixels, 0 or more")
    if padding == 0 and not flip:
        return None
    return {"crop_padding": int(padding), "flip": flip}


@dataclass(frozen=True)
class _Unit:
    """The unit a protocol's settings are given in, and their conversion to iterations."""

    iterations: int
    epochs: int | None
    examples: int | None
    batch_size: int

    @classmethod
    def of(cls, settings: dict, examples: int | None) -> "_Unit":
        if ("iterations" in settings) == ("epochs" in settings):
            given = [key for key in ("iterations", "epochs") if key in settings]
            raise ValueError(f"iterations, epochs: give exactly one of them (the length of training); got {given or 'neither'}")
        batch_size = settings["batch_size"]
        if "iterations" in settings:
            return cls(int(settings["iterations"]), None, None, batch_size)
        epochs = int(settings["epochs"])
        if examples is None:
            raise ValueError(f"epochs: a protocol in epochs ({epochs}) resolves to iterations only with the size of "
                             "the run's training set (Protocol.from_config(settings, examples=...))")
        if examples < 1:
            raise ValueError(f"epochs: the training set has {examples} examples; an epoch needs at least one")
        return cls(_epoch_end(epochs, examples, batch_size), epochs, int(examples), batch_size)

    @property
    def name(self) -> str:
        return "iterations" if self.epochs is None else "epochs"

    @property
    def length(self) -> int:
        return self.iterations if self.epochs is None else self.epochs

    def iteration(self, point: int, key: str) -> int:
        """A point of training given in this unit (1..length), in iterations."""
        if not 0 < point <= self.length:
            raise ValueError(f"{key}: {point} lies outside 1..{self.length} {self.name}")
        return int(point) if self.epochs is None else _epoch_end(point, self.examples, self.batch_size)

    def checkpoints(self, schedule) -> list[int]:
        """A checkpoint schedule in this unit (``checkpoint_iterations``), in iterations."""
        if isinstance(schedule, dict) and schedule.get("spacing") == "epoch":
            if self.epochs is None:
                raise ValueError("checkpoints: spacing 'epoch' needs a protocol in epochs (epochs, not iterations)")
            if "count" in schedule or "first" in schedule:
                raise ValueError("checkpoints: spacing 'epoch' puts one at every epoch's end: it takes no count or first")
            return sorted({_epoch_end(epoch, self.examples, self.batch_size) for epoch in range(1, self.epochs + 1)})
        if self.epochs is not None and isinstance(schedule, (list, tuple)):
            schedule = [self.iteration(point, "checkpoints") for point in schedule]
        elif self.epochs is not None and isinstance(schedule, dict) and "first" in schedule:
            schedule = {**schedule, "first": self.iteration(schedule["first"], "checkpoints.first")}
        return checkpoint_iterations(schedule, self.iterations)


def _epoch_end(epochs: int, examples: int, batch_size: int) -> int:
    """The updates after which ``epochs`` passes over ``examples`` have been drawn: ceil(e * n / b)."""
    return -(-int(epochs) * int(examples) // int(batch_size))


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
