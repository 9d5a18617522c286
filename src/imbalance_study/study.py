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
from .models import MODELS
from .training import Protocol

# What each source offers, known before anything is downloaded, so a config can be checked at once.
# max_per_class: the smallest class of both splits together (what a pooled split draws from).
SOURCE_FACTS = {
    "sklearn_digits": {"n_classes": 10, "max_per_class": 174},
    "torchvision_mnist": {"n_classes": 10, "max_per_class": 6313, "max_train_per_class": 5421,
                          "max_test_per_class": 892},
    "torchvision_fashion_mnist": {"n_classes": 10, "max_per_class": 7000, "max_train_per_class": 6000,
                                  "max_test_per_class": 1000},
}


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
        facts = SOURCE_FACTS[spec["source"]]
        if spec["protocol"] not in protocols:
            problems.append(f"datasets.{name}.protocol: '{spec['protocol']}' is not among protocols {sorted(protocols)}")
        if spec["model"] not in MODELS:
            problems.append(f"datasets.{name}.model: '{spec['model']}' is not one of {sorted(MODELS)}")
        if spec["source"] == "sklearn_digits" or spec.get("split") == "pooled":
            total = spec["train_per_class"] + spec["test_per_class"]
            if total > facts["max_per_class"]:
                problems.append(f"datasets.{name}: train_per_class + test_per_class = {total}, but the "
                                f"smallest class of {spec['source']} has {facts['max_per_class']} examples")
        else:
            for split in ("train", "test"):
                if spec[f"{split}_per_class"] > facts[f"max_{split}_per_class"]:
                    problems.append(f"datasets.{name}.{split}_per_class: {spec[f'{split}_per_class']} exceeds "
                                    f"{facts[f'max_{split}_per_class']}, the smallest class of {spec['source']}")
        if spec["source"].startswith("torchvision") and "root" not in spec:
            problems.append(f"datasets.{name}.root: required for source {spec['source']}")
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
    if step:
        for dataset in (d for d in study["datasets"] if d in datasets):
            n_classes = SOURCE_FACTS[datasets[dataset]["source"]]["n_classes"]
            for position, mu in enumerate(step["mu"]):
                try:
                    imbalance.step(mu, 1).n_minority(n_classes)
                except imbalance.ProfileError as error:
                    problems.append(f"study.profiles.step.mu[{position}]: {error} (dataset '{dataset}')")
    for figure, settings in config.get("figures", {}).items():
        for position, method in enumerate(settings.get("methods", [])):
            if method not in study["methods"]:
                problems.append(f"figures.{figure}.methods[{position}]: '{method}' is not among study.methods")
    return problems


def profiles(config: dict) -> list[str]:
    step = config["study"]["profiles"].get("step")
    if not step:
        return []
    return [imbalance.step(mu, rho).name for mu in step["mu"] for rho in step["rho"]]


def runs(config: dict) -> list[Run]:
    study = config["study"]
    return [Run(dataset, profile, seed, method)
            for dataset in study["datasets"] for profile in profiles(config)
            for seed in study["seeds"] for method in study["methods"]]


def method_protocol(config: dict, dataset: str, method: str) -> dict:
    """The dataset's protocol with the method's own overrides applied."""
    base = config["protocols"][config["datasets"][dataset]["protocol"]]
    return {**base, **config["methods"][method].get("train", {})}


def index_name(config: dict, method: str) -> str:
    settings = config["methods"][method]
    return sampling.index_name(settings.get("sampler", "none"), settings.get("ratio", 1))


def run_identity(dataset: str, profile: str, seed: int, method: str, n_classes: int) -> dict:
    """The columns that identify a run in the tidy score table."""
    parsed = imbalance.parse_profile(profile)
    return {"dataset": dataset, "profile": profile, "imbalance": parsed.kind, "mu": parsed.mu,
            "n_minority": parsed.n_minority(n_classes), "rho": parsed.rho, "seed": seed, "method": method}
