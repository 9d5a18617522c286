"""The study resolved once: frozen plan objects built from a validated config.

``resolve(config)`` turns a config that ``config.validate`` accepted (defaults filled in from the
schema) into a ``Study``: its datasets, imbalanced sets (``Cell``: a ``Profile`` and its seeds), every
run (``Run``: dataset, profile, seed and a fully resolved ``Method``), the jobs that train them
(``Bundle``) and the index files each imbalanced set needs (``IndexFile``). Every file name is made
here, from these objects, by the templates below; none is ever parsed back: the workflow maps a
wildcard to its object by dictionary lookup (``Study.cell``, ``Study.bundle``).

A job receives what its result depends on as params built here (``Run.to_dict``, ``Bundle.members``),
so that a change in any of it reruns that job; the only other settings it receives are those it runs
with that change no result (the device, the engine, how often state is saved), whose change reruns
the job but trains nothing again (``Run.fingerprint_settings`` leaves them out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from .imbalance import NATURAL, PROFILE_KINDS, Profile, natural, number, ramp, stable_hash, step
from .packing import Bundle, pack
from .protocol import Protocol
from .sampling import IMBALANCED, IndexFile

# The file contract: every stage reads and writes only these paths.
DATASET = "results/datasets/{dataset}.h5"
INDICES = "results/indices/{dataset}/{profile}/indices.json"  # lists the index files below
INDEX = "results/indices/{dataset}/{profile}/seed{seed}/{index}.npy"
BUNDLE_DIR = "results/bundles/{dataset}/{profile}/{bundle}-{n_runs}runs"
BUNDLE_SCORES = BUNDLE_DIR + "/scores.csv"
BUNDLE_RUNS = BUNDLE_DIR + "/runs.json"
RUN_DIR = "results/runs/{dataset}/{profile}/seed{seed}/{method}"
SCORES = "results/scores.csv"
PROVENANCE = "results/scores.provenance.json"
FIGURE = "figures/{figure}.{extension}"

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


@dataclass(frozen=True)
class Run:
    """One training run: a method on one imbalanced set (dataset, profile, seed)."""

    dataset: str
    profile: Profile
    seed: int
    method: Method
    model: str
    model_options: dict = field(default_factory=dict, hash=False)

    @property
    def key(self) -> tuple[str, str, int, str]:
        return self.dataset, self.profile.name, self.seed, self.method.variant

    @property
    def protocol(self) -> Protocol:
        return self.method.protocol

    @property
    def directory(self) -> str:
        return RUN_DIR.format(dataset=self.dataset, profile=self.profile.name, seed=self.seed,
                              method=self.method.variant)

    def index_path(self, index: IndexFile | None = None) -> str:
        return INDEX.format(dataset=self.dataset, profile=self.profile.name, seed=self.seed,
                            index=(index or self.method.index).name)

    def phase_one_directory(self) -> str | None:
        if not self.method.two_phase:
            return None
        return RUN_DIR.format(dataset=self.dataset, profile=self.profile.name, seed=self.seed,
                              method=self.method.phase_one)

    def init_seed(self) -> int:
        # Methods of one (dataset, profile, seed) share their initial weights: comparisons between
        # methods are paired.
        sequence = np.random.SeedSequence([self.seed, stable_hash(self.dataset), stable_hash(self.profile.name)])
        return int(sequence.generate_state(1)[0])

    def data_rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, stable_hash(self.dataset), stable_hash(self.profile.name),
                                      stable_hash(self.method.variant)])

    def fingerprint_settings(self) -> dict:
        """What the run's result depends on, for its fingerprint (with its inputs: index file, dataset)."""
        protocol = asdict(self.protocol)
        # How often the state is saved changes no result: a resumed run ends bit-identical.
        del protocol["resume_every"]
        settings = {"dataset": self.dataset, "profile": self.profile.name, "seed": self.seed,
                    "method": self.method.variant, "model": self.model, "protocol": protocol,
                    "model_options": self.model_options}
        # Each only when it departs from the paper's methods, so that runs trained before the setting
        # existed stay valid.
        method = self.method
        if method.fine_tuned:
            settings["fine_tuned_layers"] = list(method.fine_tuned)
        if not method.plain_loss:
            settings["loss"] = method.loss_in_use()
        if method.batches != "shuffled":
            settings["batches"] = method.batches
        if method.reinitialise:
            settings["reinitialise"] = True
        if method.tau_normalise is not None:
            settings["tau_normalise"] = method.tau_normalise
        return settings

    def identity(self, n_classes: int) -> dict:
        """The columns that identify the run in the tidy score table.

        ``selected`` is final outside a learning-rate search; for searched runs the aggregation step
        decides it (``selection``), so it starts False.
        """
        method = self.method
        return {"dataset": self.dataset, "profile": self.profile.name, "imbalance": self.profile.kind,
                "mu": self.profile.mu, "n_minority": self.profile.n_minority(n_classes), "rho": self.profile.rho,
                "seed": self.seed, "method": method.name, "variant": method.variant, "sampler": method.sampler,
                "sampling_ratio": method.ratio if method.sampler != "none" else None,
                "two_phase": method.two_phase, "loss": method.loss["name"], "loss_weights": method.loss["weights"],
                "batches": method.batches, "base_lr": method.base_lr, "selected": not method.searched,
                "select_on": method.select_on, "select_metric": method.select_metric}

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "profile": asdict(self.profile), "seed": self.seed,
                "method": self.method.settings, "model": self.model, "model_options": self.model_options}

    @classmethod
    def from_dict(cls, settings: dict) -> "Run":
        return cls(dataset=settings["dataset"], profile=Profile(**settings["profile"]), seed=settings["seed"],
                   method=Method.from_dict(settings["method"]), model=settings["model"],
                   model_options=settings["model_options"])


@dataclass(frozen=True)
class Cell:
    """An imbalanced set of a dataset: its profile, the seeds drawn, the index files its methods need."""

    dataset: str
    profile: Profile
    seeds: tuple[int, ...]
    index_files: tuple[IndexFile, ...]
    repeats: str  # new_data: each seed draws its own set; same_data: every seed trains on the first seed's

    def data_seed(self, seed: int) -> int:
        """The seed a repeat's index files are drawn with: its own, or with ``repeats: same_data`` the
        cell's first, so that repeats differ only in initial weights and data order (the paper's CIFAR-10)."""
        return seed if self.repeats == "new_data" else self.seeds[0]

    def data_seeds(self) -> dict[str, int]:
        """Per seed (as text), the seed its index files are drawn with."""
        return {str(seed): self.data_seed(seed) for seed in self.seeds}

    @property
    def context(self) -> str:
        """What the random draws of its sampled index files are seeded with, beside the seed."""
        return f"{self.dataset}/{self.profile.name}"

    def profile_settings(self) -> dict:
        return asdict(self.profile)

    def index_file_settings(self) -> list[dict]:
        return [asdict(index) for index in self.index_files]

    def index_paths(self) -> dict[str, dict[str, str]]:
        """Per seed (as text) and index file name, the path of the file."""
        return {str(seed): {index.name: INDEX.format(dataset=self.dataset, profile=self.profile.name, seed=seed,
                                                     index=index.name) for index in self.index_files}
                for seed in self.seeds}


@dataclass(frozen=True)
class DatasetPlan:
    """A dataset of the study and its config settings."""

    name: str
    settings: dict = field(hash=False)

    @property
    def path(self) -> str:
        return DATASET.format(dataset=self.name)


def profile_grids(config: dict) -> list[tuple[str, str, dict]]:
    """Every grid of ``study.profiles`` as (its key, kind, grid): a kind holds one grid (key
    ``study.profiles.step``) or a list of them (``study.profiles.step[1]``)."""
    grids = []
    for kind in PROFILE_KINDS:
        settings = config["study"]["profiles"].get(kind)
        key = f"study.profiles.{kind}"
        if isinstance(settings, dict):
            grids.append((key, kind, settings))
        else:
            grids.extend((f"{key}[{position}]", kind, grid) for position, grid in enumerate(settings or []))
    return grids


def searched(config: dict, dataset: str, method: str) -> dict | None:
    """The learning-rate search a method's runs make on a dataset (its own, else its protocol's), or None."""
    return method_protocol_settings(config, dataset, method).get("lr_search")


def profile_seeds(config: dict) -> list[tuple[Profile, tuple[int, ...]]]:
    """Every imbalanced profile with its seeds, in config order; a grid's own seeds override study.seeds."""
    cells: dict[Profile, list[int]] = {}
    for _, kind, grid in profile_grids(config):
        if kind == "step":
            profiles = [step(mu, rho) for mu in grid["mu"] for rho in grid["rho"]]
        elif kind == NATURAL:
            profiles = [natural()]
        else:
            profiles = [ramp(kind, rho) for rho in grid["rho"]]
        for profile in profiles:
            seeds = cells.setdefault(profile, [])
            seeds.extend(seed for seed in grid.get("seeds", config["study"]["seeds"]) if seed not in seeds)
    return [(profile, tuple(seeds)) for profile, seeds in cells.items()]


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


@dataclass(frozen=True)
class Study:
    """A resolved study: what runs, in which jobs, and where every file lies."""

    config: dict = field(hash=False, repr=False)
    datasets: dict[str, DatasetPlan] = field(hash=False)
    cells: tuple[Cell, ...]
    runs: tuple[Run, ...]
    bundles: tuple[Bundle, ...]

    @cached_property
    def _cells(self) -> dict[tuple[str, str], Cell]:
        return {(cell.dataset, cell.profile.name): cell for cell in self.cells}

    @cached_property
    def _bundles(self) -> dict[tuple[str, str, str], Bundle]:
        return {(bundle.dataset, bundle.profile.name, bundle.name): bundle for bundle in self.bundles}

    def cell(self, dataset: str, profile: str) -> Cell:
        try:
            return self._cells[(dataset, profile)]
        except KeyError:
            raise KeyError(f"{dataset}/{profile} is not an imbalanced set of this study") from None

    def bundle(self, dataset: str, profile: str, name: str, n_runs: int) -> Bundle:
        bundle = self._bundles.get((dataset, profile, name))
        if bundle is None or len(bundle.runs) != n_runs:
            raise KeyError(f"{dataset}/{profile}/{name}-{n_runs}runs is not a bundle of this study "
                           "(the config or engine.runs_per_job changed?)")
        return bundle

    def phase_one_bundles(self, bundle: Bundle) -> list[Bundle]:
        return [self._bundles[(bundle.dataset, bundle.profile.name, name)] for name in bundle.after]

    def bundles_holding(self, runs) -> list[Bundle]:
        keys = {run.key for run in runs}
        return [bundle for bundle in self.bundles if keys.intersection(run.key for run in bundle.runs)]

    def profiles(self) -> list[Profile]:
        """The study's distinct profiles, in config order."""
        return list(dict.fromkeys(cell.profile for cell in self.cells))


def resolve(config: dict) -> Study:
    """The plan of a validated config (``config.validate`` first: it fills in the schema's defaults)."""
    study = config["study"]
    datasets = {name: DatasetPlan(name, config["datasets"][name]) for name in study["datasets"]}
    profiles = profile_seeds(config)
    # Methods are shared by every profile of a dataset, unless a protocol in epochs makes their
    # iterations depend on each profile's set.
    per_profile = uses_epochs(config)
    shared = {} if per_profile else {
        dataset: [variant for name in study["methods"] for variant in resolve_method(config, dataset, name)]
        for dataset in datasets}
    methods = {(dataset, profile): shared.get(dataset) or [
        variant for name in study["methods"] for variant in resolve_method(config, dataset, name, profile)]
        for dataset in datasets for profile, _ in profiles}
    runs = tuple(Run(dataset, profile, seed, method, plan.settings["model"],
                     {**plan.settings["model_options"], **method.model_options})
                 for dataset, plan in datasets.items() for profile, seeds in profiles
                 for seed in seeds for method in methods[(dataset, profile)])
    cells = tuple(Cell(dataset, profile, seeds,
                       tuple(dict.fromkeys([IMBALANCED] + [method.index for method in methods[(dataset, profile)]])),
                       study["repeats"])
                  for dataset in datasets for profile, seeds in profiles)
    return Study(config=config, datasets=datasets, cells=cells, runs=runs,
                 bundles=tuple(pack(list(runs), config["engine"]["runs_per_job"])))
