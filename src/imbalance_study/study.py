"""From a config to the grid of runs, and the checks a JSON schema cannot express.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types, ranges and enums; the
cross-field checks here name the key at fault and what is allowed, before any job runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from . import imbalance, sampling
from .protocol import Protocol

# The models of imbalance_study.models (not imported here: it imports PyTorch; a test keeps the two equal).
MODELS = ("allcnn_c", "digits_cnn", "lenet5", "mlp", "resnet10")

# What each source offers, known before anything is downloaded, so a config can be checked at once.
# max_per_class: the smallest class of both splits together (what a pooled split draws from).
SOURCE_FACTS = {
    "sklearn_digits": {"n_classes": 10, "max_per_class": 174},
    "torchvision_mnist": {"n_classes": 10, "max_per_class": 6313, "max_train_per_class": 5421,
                          "max_test_per_class": 892},
    "torchvision_fashion_mnist": {"n_classes": 10, "max_per_class": 7000, "max_train_per_class": 6000,
                                  "max_test_per_class": 1000},
    "torchvision_cifar10": {"n_classes": 10, "max_per_class": 6000, "max_train_per_class": 5000,
                            "max_test_per_class": 1000},
    "sklearn_breast_cancer": {"n_classes": 2, "max_per_class": 212},
}


# Sources whose facts come from the user's files: what a config must name for each.
REQUIRED_KEYS = {"torchvision_mnist": ("root",), "torchvision_fashion_mnist": ("root",),
                 "torchvision_cifar10": ("root",), "csv": ("path",), "image_folder": ("train_root",)}
ALWAYS_POOLED = ("sklearn_digits", "sklearn_breast_cancer", "csv")


def n_classes_of(spec: dict) -> int | None:
    """Number of classes, known without preparing the dataset (None when only the data can tell)."""
    if spec["source"] in SOURCE_FACTS:
        return SOURCE_FACTS[spec["source"]]["n_classes"]
    if "n_classes" in spec:
        return spec["n_classes"]
    if spec["source"] == "image_folder" and Path(spec["train_root"]).is_dir():
        return sum(1 for entry in Path(spec["train_root"]).iterdir() if entry.is_dir())
    return None


def _dataset_errors(name: str, spec: dict) -> list[str]:
    source = spec["source"]
    problems = [f"datasets.{name}.{key}: required for source {source}"
                for key in REQUIRED_KEYS.get(source, ()) if key not in spec]
    facts = SOURCE_FACTS.get(source)
    if facts is None:  # csv and image folders: checked against the files when the dataset is prepared
        return problems
    held_out = spec.get("validation_per_class", 0)
    if source in ALWAYS_POOLED or spec.get("split") == "pooled":
        total = spec["train_per_class"] + spec["test_per_class"] + held_out
        if total > facts["max_per_class"]:
            parts = "train_per_class + validation_per_class + test_per_class" if held_out else \
                "train_per_class + test_per_class"
            problems.append(f"datasets.{name}: {parts} = {total}, but the smallest class of {source} has "
                            f"{facts['max_per_class']} examples")
    else:
        wanted = {"train": spec["train_per_class"] + held_out, "test": spec["test_per_class"]}
        for split, count in wanted.items():
            if count > facts[f"max_{split}_per_class"]:
                what = "train_per_class + validation_per_class" if split == "train" and held_out else f"{split}_per_class"
                problems.append(f"datasets.{name}.{split}_per_class: {what} = {count} exceeds "
                                f"{facts[f'max_{split}_per_class']}, the smallest class of {source}")
    return problems


class ConfigError(ValueError):
    """A config that cannot run; the message starts with the key at fault."""


@dataclass(frozen=True)
class Run:
    dataset: str
    profile: str
    seed: int
    method: str


def _filling_defaults(validator_class):
    """A validator that also writes each property's ``default`` into the instance it checks."""
    check_properties = validator_class.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_then_check})


def key_path(parts) -> str:
    """``['study', 'seeds', 0]`` as ``study.seeds[0]``, the way the cross-field checks name keys."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def schema_errors(config: dict, schema_path: str | Path) -> list[str]:
    """Every schema violation as ``key.path: problem``, sorted; fills in the schema's defaults."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _filling_defaults(jsonschema.Draft202012Validator)(schema)
    messages = []
    for error in validator.iter_errors(config):
        # "not valid under any of the given schemas" names no key: report the alternative that
        # came closest instead (a grid with a bad rho, rather than "not a list of grids").
        while error.validator in ("oneOf", "anyOf") and error.context:
            same_type = [sub for sub in error.context if not (sub.validator == "type" and not sub.relative_path)]
            error = jsonschema.exceptions.best_match(same_type or error.context)
        messages.append(f"{key_path(error.absolute_path)}: {error.message}")
    return sorted(messages)


def validate(config: dict, schema_path: str | Path) -> None:
    """Schema and cross-field checks; raises one ConfigError listing every problem found.

    Defaults from the schema are written into ``config``, so every later reader sees them.
    """
    problems = schema_errors(config, schema_path)
    if not problems:
        problems = cross_field_errors(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def cross_field_errors(config: dict) -> list[str]:
    problems = []
    datasets, protocols, methods = config["datasets"], config["protocols"], config["methods"]
    study = config["study"]
    for name, spec in datasets.items():
        if spec["protocol"] not in protocols:
            problems.append(f"datasets.{name}.protocol: '{spec['protocol']}' is not among protocols {sorted(protocols)}")
        if spec["model"] not in MODELS:
            problems.append(f"datasets.{name}.model: '{spec['model']}' is not one of {sorted(MODELS)}")
        problems.extend(_dataset_errors(name, spec))
    for name, settings in protocols.items():
        try:
            Protocol.from_config(settings)
        except (ValueError, KeyError) as error:
            problems.append(f"protocols.{name}: {error}")
    for name, settings in methods.items():
        for dataset in study["datasets"]:
            if dataset not in datasets or datasets[dataset]["protocol"] not in protocols:
                continue
            try:
                Protocol.from_config(method_protocol(config, dataset, name))
            except (ValueError, KeyError) as error:
                problems.append(f"methods.{name}.train: {error}")
    for position, dataset in enumerate(study["datasets"]):
        if dataset not in datasets:
            problems.append(f"study.datasets[{position}]: '{dataset}' is not among datasets {sorted(datasets)}")
    for position, method in enumerate(study["methods"]):
        if method not in methods:
            problems.append(f"study.methods[{position}]: '{method}' is not among methods {sorted(methods)}")
    step = study["profiles"].get("step")
    step_grids = [step] if isinstance(step, dict) else step or []
    for dataset in (d for d in study["datasets"] if d in datasets):
        n_classes = n_classes_of(datasets[dataset])
        if n_classes is None:
            continue
        for number, grid in enumerate(step_grids):
            where = "study.profiles.step" + ("" if isinstance(step, dict) else f"[{number}]")
            for position, mu in enumerate(grid["mu"]):
                try:
                    imbalance.step(mu, 1).n_minority(n_classes)
                except imbalance.ProfileError as error:
                    problems.append(f"{where}.mu[{position}]: {error} (dataset '{dataset}')")
    problems.extend(_method_errors(config))
    for figure, settings in config.get("figures", {}).items():
        for position, method in enumerate(settings.get("methods", [])):
            if method not in study["methods"]:
                problems.append(f"figures.{figure}.methods[{position}]: '{method}' is not among study.methods")
    return problems


def _method_errors(config: dict) -> list[str]:
    """Two-phase methods need their first phase's run; a search on validation needs a validation split."""
    problems = []
    methods, study = config["methods"], config["study"]
    for name, settings in methods.items():
        two_phase = settings.get("two_phase")
        if two_phase:
            source = two_phase["from"]
            if source not in methods:
                problems.append(f"methods.{name}.two_phase.from: '{source}' is not among methods {sorted(methods)}")
            elif methods[source].get("sampler", "none") == "none" or methods[source].get("two_phase"):
                problems.append(f"methods.{name}.two_phase.from: '{source}' must be a one-phase method with a "
                                f"sampler (over or under)")
            elif name in study["methods"] and source not in study["methods"]:
                problems.append(f"methods.{name}.two_phase.from: '{source}' must also be in study.methods, "
                                f"as {name} starts from its runs")
            if settings.get("sampler", "none") != "none":
                problems.append(f"methods.{name}.sampler: a two-phase method fine-tunes on the imbalanced set; "
                                f"set the sampler on '{source}' instead")
            if source in methods and name in study["methods"]:
                problems.extend(_phase_one_lr_errors(config, name, source))
    for dataset in (d for d in study["datasets"] if d in config["datasets"]):
        spec = config["datasets"][dataset]
        if spec["protocol"] not in config["protocols"]:
            continue
        for method in (m for m in study["methods"] if m in methods):
            search = lr_search(config, dataset, method)
            if search and search["select_on"] == "validation" and not spec.get("validation_per_class"):
                problems.append(f"datasets.{dataset}.validation_per_class: the learning-rate search of method "
                                f"'{method}' selects on a validation split; set validation_per_class > 0 "
                                f"or select_on: test")
    return problems


def _phase_one_lr_errors(config: dict, name: str, source: str) -> list[str]:
    """Each learning rate a two-phase method searches must be one its first phase trains."""
    problems = []
    for dataset in (d for d in config["study"]["datasets"] if d in config["datasets"]):
        if config["datasets"][dataset]["protocol"] not in config["protocols"]:
            continue
        trained = set(method_variants(config, dataset, source))
        needed = [phase_one_method(config, variant) for variant in method_variants(config, dataset, name)]
        missing = [variant for variant in needed if variant not in trained]
        if missing:
            problems.append(f"methods.{name}.two_phase.from: '{name}' starts from runs {missing} on dataset "
                            f"'{dataset}', which '{source}' does not train ({sorted(trained)}); give both "
                            f"methods the same lr_search")
    return problems


PROFILE_KINDS = imbalance.PROFILE_KINDS


def profile_grids(config: dict) -> list[dict]:
    """Every grid of ``study.profiles`` as ``{kind, mu, rho, seeds}``; a kind may list several grids.

    A grid's own ``seeds`` override ``study.seeds``: the paper repeats one ImageNet cell three times.
    """
    grids = []
    for kind in PROFILE_KINDS:
        settings = config["study"]["profiles"].get(kind)
        for grid in ([settings] if isinstance(settings, dict) else settings or []):
            grids.append({"kind": kind, "mu": grid.get("mu"), "rho": grid["rho"],
                          "seeds": grid.get("seeds", config["study"]["seeds"])})
    return grids


def profile_cells(config: dict) -> list[tuple[str, list[int]]]:
    """(profile name, seeds) for every imbalanced set the study draws, in config order."""
    cells: dict[str, list[int]] = {}
    for grid in profile_grids(config):
        if grid["kind"] == "step":
            names = [imbalance.step(mu, rho).name for mu in grid["mu"] for rho in grid["rho"]]
        else:
            names = [imbalance.ramp(grid["kind"], rho).name for rho in grid["rho"]]
        for name in names:
            seeds = cells.setdefault(name, [])
            seeds.extend(seed for seed in grid["seeds"] if seed not in seeds)
    return list(cells.items())


def profiles(config: dict) -> list[str]:
    return [name for name, _ in profile_cells(config)]


LR_SUFFIX = "-lr"


def split_method(name: str) -> tuple[str, float | None]:
    """``over-lr0.005`` -> ("over", 0.005): a run of a learning-rate search; ``over`` -> ("over", None)."""
    base, _, lr = name.partition(LR_SUFFIX)
    return base, float(lr) if lr else None


def _method_settings(config: dict, dataset: str, method: str) -> dict:
    """The dataset's protocol with the overrides of method ``method`` (a name without lr suffix)."""
    base = config["protocols"][config["datasets"][dataset]["protocol"]]
    return {**base, **config["methods"][method].get("train", {})}


def lr_search(config: dict, dataset: str, method: str) -> dict | None:
    return _method_settings(config, dataset, method).get("lr_search")


def method_variants(config: dict, dataset: str, method: str) -> list[str]:
    """The runs one method makes on a dataset: itself, or one per learning rate of its search."""
    search = lr_search(config, dataset, method)
    if not search:
        return [method]
    return [f"{method}{LR_SUFFIX}{lr:g}" for lr in search["values"]]


def runs(config: dict) -> list[Run]:
    study = config["study"]
    return [Run(dataset, profile, seed, variant)
            for dataset in study["datasets"] for profile, seeds in profile_cells(config)
            for seed in seeds for method in study["methods"]
            for variant in method_variants(config, dataset, method)]


@dataclass(frozen=True)
class Bundle:
    """Runs that one job trains and scores: same dataset, imbalance profile, model and protocol.

    ``name`` (``bundle00``) numbers the bundles of a (dataset, profile); ``after`` names the bundles
    holding the first-phase runs of its two-phase runs.
    """

    dataset: str
    profile: str
    name: str
    runs: tuple[Run, ...]
    after: tuple[str, ...] = ()


def bundles(config: dict, runs_of_study: list[Run] | None = None) -> list[Bundle]:
    """The study's runs packed into jobs of at most ``engine.runs_per_job`` runs.

    Runs are packed when they share dataset, profile, model and protocol (so one process can train
    them stacked) and the phase: a two-phase run waits for its first phase, in an earlier bundle.
    A group larger than the limit is split into nearly equal bundles.
    """
    import json
    import math

    limit = config.get("engine", {}).get("runs_per_job", 1)
    groups: dict[tuple, list[Run]] = {}
    for run in runs_of_study if runs_of_study is not None else runs(config):
        protocol = json.dumps(method_protocol(config, run.dataset, run.method), sort_keys=True)
        second_phase = phase_one_method(config, run.method) is not None
        groups.setdefault((run.dataset, run.profile, second_phase, protocol), []).append(run)
    packed: list[Bundle] = []
    home: dict[Run, str] = {}
    numbers: dict[tuple[str, str], int] = {}
    for (dataset, profile, second_phase, _), members in sorted(groups.items(), key=lambda item: item[0][2]):
        count = math.ceil(len(members) / limit)
        for part in range(count):
            chunk = tuple(members[part * len(members) // count: (part + 1) * len(members) // count])
            number = numbers.get((dataset, profile), 0)
            numbers[(dataset, profile)] = number + 1
            name = f"bundle{number:02d}"
            after = ()
            if second_phase:
                after = tuple(sorted({home[Run(run.dataset, run.profile, run.seed,
                                              phase_one_method(config, run.method))] for run in chunk}))
            packed.append(Bundle(dataset, profile, name, chunk, after))
            home.update((run, name) for run in chunk)
    return packed


def figure_runs(config: dict, name: str, runs_of_study: list[Run]) -> list[Run]:
    """The runs a figure draws on (so that one figure can be built alone, from its runs' bundles)."""
    settings = config.get("figures", {}).get(name, {})
    methods = settings.get("methods") or config["study"]["methods"]
    datasets = settings.get("datasets") or config["study"]["datasets"]
    chosen = [run for run in runs_of_study if run.dataset in datasets]
    if name in ("fig3", "fig4", "fig6", "table4"):
        return [run for run in chosen if run.profile.startswith("step-") and split_method(run.method)[0] in methods]
    if name == "fig5":
        kind = settings.get("imbalance", "linear")
        return [run for run in chosen if run.profile.startswith(f"{kind}-") and split_method(run.method)[0] in methods]
    if name == "fig7":
        rho = settings.get("rho", 1000)
        return [run for run in chosen if run.profile.startswith("step-") and imbalance.parse_profile(run.profile).rho == rho
                and not phase_one_method(config, run.method)]
    if name in ("fig8", "dynamics"):
        profile = settings.get("profile") or fig8_default_profile(config)
        if name == "fig8":
            methods = settings.get("methods") or ["baseline", "over", "under"]
        return [run for run in chosen if run.profile == profile and split_method(run.method)[0] in methods]
    raise ValueError(f"unknown figure '{name}', expected one of {FIGURES}")


FIGURES = ("fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "table4", "dynamics")


def method_protocol(config: dict, dataset: str, method: str) -> dict:
    """The protocol of run ``method`` (a method name, or one with a searched lr suffix).

    The dataset's protocol, the method's own overrides, the searched learning rate, and for a
    two-phase method the fine-tuning factor on the learning rate.
    """
    name, searched_lr = split_method(method)
    settings = config["methods"][name]
    protocol = _method_settings(config, dataset, name)
    protocol.pop("lr_search", None)
    if searched_lr is not None:
        protocol["lr"] = searched_lr
    if settings.get("two_phase"):
        protocol["lr"] = protocol["lr"] * settings["two_phase"].get("lr_factor", 0.1)
    return protocol


def base_lr(config: dict, dataset: str, method: str) -> float:
    """The learning rate a run is filed under: the searched one, before any two-phase factor."""
    name, searched_lr = split_method(method)
    if searched_lr is not None:
        return searched_lr
    return _method_settings(config, dataset, name)["lr"]


def phase_one_method(config: dict, method: str) -> str | None:
    """The run a two-phase run starts from (same lr suffix), or None for a one-phase method."""
    name, _, suffix = method.partition(LR_SUFFIX)
    two_phase = config["methods"][name].get("two_phase")
    if not two_phase:
        return None
    return two_phase["from"] + (LR_SUFFIX + suffix if suffix else "")


def sampler_of(config: dict, method: str) -> tuple[str, float]:
    """(sampler, ratio) of a method; a two-phase method reports its first phase's sampler."""
    settings = config["methods"][split_method(method)[0]]
    if settings.get("two_phase"):
        settings = config["methods"][settings["two_phase"]["from"]]
    return settings.get("sampler", "none"), settings.get("ratio", 1)


def index_name(config: dict, method: str) -> str:
    """The index file a run trains on; the second phase of a two-phase method uses the imbalanced set."""
    settings = config["methods"][split_method(method)[0]]
    if settings.get("two_phase"):
        return "imbalanced"
    return sampling.index_name(settings.get("sampler", "none"), settings.get("ratio", 1))


def bundle_members(config: dict, bundle: Bundle) -> list[dict]:
    """What a bundle's job needs of each run (``bundles.Member``); the rule passes it as a param,
    so a change in any of it reruns the job."""
    members = []
    for run in bundle.runs:
        spec = config["datasets"][run.dataset]
        members.append({"seed": run.seed, "method": run.method, "model": spec["model"],
                        "model_options": spec.get("model_options", {}),
                        "protocol": method_protocol(config, run.dataset, run.method),
                        "index": index_name(config, run.method),
                        "phase_one": phase_one_method(config, run.method)})
    return members


def run_identity(config: dict, dataset: str, profile: str, seed: int, method: str, n_classes: int) -> dict:
    """The columns that identify a run in the tidy score table.

    ``selected`` is final for runs without a learning-rate search; for searched runs the aggregation
    step decides it (see ``selection``), so it starts False.
    """
    parsed = imbalance.parse_profile(profile)
    name, searched_lr = split_method(method)
    sampler, ratio = sampler_of(config, method)
    search = lr_search(config, dataset, name)
    return {"dataset": dataset, "profile": profile, "imbalance": parsed.kind, "mu": parsed.mu,
            "n_minority": parsed.n_minority(n_classes), "rho": parsed.rho, "seed": seed, "method": name,
            "variant": method, "sampler": sampler, "sampling_ratio": ratio if sampler != "none" else None,
            "two_phase": bool(config["methods"][name].get("two_phase")),
            "base_lr": base_lr(config, dataset, method), "selected": searched_lr is None,
            "select_on": search["select_on"] if search else "",
            "select_metric": search["metric"] if search else ""}


def fig8_default_profile(config: dict) -> str | None:
    """Fig. 8's profile when the config names none: the largest rho, then the fewest minority classes
    (the same choice as ``figures.plot_fig8``)."""
    steps = [imbalance.parse_profile(name) for name in profiles(config) if name.startswith("step-")]
    if not steps:
        return None
    return min(steps, key=lambda profile: (-profile.rho, profile.mu)).name


def provenance(config: dict) -> dict:
    """What made an output: the config's sha256 and the installed versions (read from package
    metadata, so nothing heavy is imported)."""
    import hashlib
    import json
    import platform
    from importlib.metadata import PackageNotFoundError, version

    software = {"python": platform.python_version()}
    for package in ("imbalance-study", "snakemake", "torch", "numpy", "pandas", "matplotlib", "seaborn"):
        try:
            software[package] = version(package)
        except PackageNotFoundError:
            software[package] = None
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return {"config_sha256": digest, "software": software}
