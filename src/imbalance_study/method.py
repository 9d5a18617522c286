"""One run's method resolved from the config: what it trains on, with which protocol and loss, and
how it is selected.

``resolve_method(config, dataset, name, profile)`` gives the runs a config method makes on a
dataset (itself, or one per learning rate of its search) as frozen ``Method`` objects, whose
``settings`` are what a training job's params carry (``plan.Run.to_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

from .imbalance import Profile, number
from .protocol import Protocol
from .sampling import IMBALANCED, IndexFile

LR_MARK = "-lr"  # a run of a learning-rate search: over-lr0.005
PLAIN_LOSS = {"name": "cross_entropy", "weights": "none"}  # what every loss setting reduces to by default
# The settings each loss reads beside its class weights.
LOSS_SETTINGS = {"cross_entropy": (), "focal": ("gamma",), "ldam": ("max_margin", "scale"), "logit_adjusted": ("tau",),
                 "balanced_softmax": ()}


@dataclass(frozen=True)
class Method:
    """One run's method, resolved: what it trains on, with which protocol, and how it is selected.

    ``variant`` is the run's name: the method's, or with the searched learning rate (``over-lr0.005``).
    A two-phase method reports its first phase's sampler, trains on the imbalanced set, and starts
    from the run ``phase_one`` (a variant of the same set and seed).

    ``loss`` is the training loss with every setting present (``losses``); ``batches`` how batches are
    drawn from the index file: shuffled epochs, or class_balanced (a class uniformly, then one of
    its examples). A second phase may ``reinitialise`` the layers it trains (cRT), or be a
    ``tau_normalise`` run that trains nothing (each first-phase checkpoint with its output weights
    rescaled).
    """

    name: str
    variant: str
    sampler: str
    ratio: float
    index: IndexFile
    protocol: Protocol = field(hash=False)
    base_lr: float
    phase_one: str | None = None
    fine_tuned: tuple[str, ...] = ()  # a second phase's layers when the config names them, else the model's
    select_on: str = ""  # "" outside a learning-rate search
    select_metric: str = ""
    loss: dict = field(default_factory=lambda: dict(PLAIN_LOSS), hash=False)
    batches: str = "shuffled"
    reinitialise: bool = False
    tau_normalise: float | None = None
    model_options: dict = field(default_factory=dict, hash=False)  # over the dataset's (a second phase: its first's)

    @property
    def plain_loss(self) -> bool:
        return all(self.loss.get(key, value) == value for key, value in PLAIN_LOSS.items())

    def loss_in_use(self) -> dict:
        """The loss settings its computation reads (a focal loss's run does not depend on ``tau``)."""
        used = {"name", "weights"} | set(LOSS_SETTINGS[self.loss["name"]])
        if self.loss["weights"] != "none":
            used |= {"weights_from"} | ({"beta"} if self.loss["weights"] == "effective_number" else set())
        return {key: value for key, value in self.loss.items() if key in used}

    @property
    def trains(self) -> bool:
        """Whether its runs train (a tau-normalisation run only rescales its first phase's checkpoints)."""
        return self.tau_normalise is None

    @property
    def two_phase(self) -> bool:
        return self.phase_one is not None

    @property
    def searched(self) -> bool:
        return bool(self.select_on)

    @cached_property
    def settings(self) -> dict:
        """The method as a job's params carry it (computed once: thousands of runs share a method)."""
        settings = asdict(self)
        settings["index"] = asdict(self.index)
        return settings

    @classmethod
    def from_dict(cls, settings: dict) -> "Method":
        return cls(**{**settings, "index": IndexFile(**settings["index"]), "fine_tuned": tuple(settings["fine_tuned"]),
                      "protocol": Protocol.from_dict(settings["protocol"])})


def searched(config: dict, dataset: str, method: str) -> dict | None:
    """The learning-rate search a method's runs make on a dataset (its own, else its protocol's), or None."""
    return method_protocol_settings(config, dataset, method).get("lr_search")


def method_protocol_settings(config: dict, dataset: str, method: str) -> dict:
    """The dataset's protocol with the method's own overrides (``methods.<name>.train``)."""
    base = config["protocols"][config["datasets"][dataset]["protocol"]]
    train = config["methods"][method].get("train", {})
    # A length given by the method, in iterations or in epochs, replaces the protocol's in either unit.
    length = {"iterations", "epochs"} & set(train)
    return {**{key: value for key, value in base.items() if not length or key not in ("iterations", "epochs")}, **train}


def variant_name(method: str, lr: float | None) -> str:
    return method if lr is None else f"{method}{LR_MARK}{number(lr)}"


def uses_epochs(config: dict) -> bool:
    """Whether any run's protocol is given in epochs (its iterations then depend on its set's size)."""
    return any("epochs" in method_protocol_settings(config, dataset, method)
               for dataset in config["study"]["datasets"] for method in config["study"]["methods"])


def resolve_method(config: dict, dataset: str, name: str, profile: Profile | None = None) -> list[Method]:
    """The runs one method makes on a dataset: itself, or one per learning rate of its search. A
    protocol in epochs is resolved for the training set of ``profile`` (its size: ``set_sizes``)."""
    settings = config["methods"][name]
    search = searched(config, dataset, name)
    protocol = {key: value for key, value in method_protocol_settings(config, dataset, name).items()
                if key != "lr_search"}
    two_phase = settings.get("two_phase")
    first = config["methods"][two_phase["from"]] if two_phase else settings
    sampler, ratio = first["sampler"], float(first["ratio"])
    # Replicated or dropped examples are index files; the other samplers draw from the imbalanced set.
    index = IMBALANCED if two_phase or sampler in ("none", "class_balanced") else IndexFile(sampler, ratio)
    batches = (two_phase["sampler"] if two_phase else sampler) == "class_balanced"
    examples = None
    if "epochs" in protocol:
        from .set_sizes import training_examples

        examples = training_examples(dataset, config["datasets"][dataset], profile, index)
    variants = []
    for lr in (search["values"] if search else [None]):
        base_lr = protocol["lr"] if lr is None else lr
        run_lr = base_lr * two_phase["lr_factor"] if two_phase else base_lr
        variants.append(Method(
            name=name, variant=variant_name(name, lr), sampler=sampler, ratio=ratio, index=index,
            protocol=Protocol.from_config({**protocol, "lr": run_lr}, examples), base_lr=base_lr,
            phase_one=variant_name(two_phase["from"], lr) if two_phase else None,
            fine_tuned=tuple(two_phase.get("layers", ())) if two_phase else (),
            select_on=search["select_on"] if search else "", select_metric=search["metric"] if search else "",
            loss=dict(settings["loss"]), batches="class_balanced" if batches else "shuffled",
            reinitialise=bool(two_phase and two_phase["reinitialise"]),
            tau_normalise=two_phase.get("tau_normalise") if two_phase else None,
            model_options=dict(first.get("model_options", {}))))
    return variants
