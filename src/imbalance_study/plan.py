"""The study resolved once: frozen plan objects built from a validated config.

``resolve(config)`` turns a config that ``config.validate`` accepted (defaults filled in from the
schema) into a ``Study``: its datasets, imbalanced sets (``Cell``: a ``Profile`` and its seeds), every
run (``Run``: dataset, profile, seed and a fully resolved ``method.Method``), the jobs that train them
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

from .imbalance import NATURAL, PROFILE_KINDS, Profile, natural, ramp, stable_hash, step
from .method import Method, resolve_method, uses_epochs
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
