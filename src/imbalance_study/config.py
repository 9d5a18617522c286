"""Checking a study config before any job runs.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types, ranges and enums and holds
every default, which ``validate`` writes into the config; the cross-field checks here name the key at
fault and what is allowed. A config that passes can be resolved into a plan (``plan.resolve``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
import yaml

from . import imbalance, plan, source_facts
from .method import method_protocol_settings, searched, variant_name
from .protocol import Protocol
from .source_facts import ALWAYS_POOLED, NATURAL, REQUIRED_KEYS, SOURCE_FACTS, design_errors, n_classes_of, test_kind

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# The models of imbalance_study.models (not imported here: it imports PyTorch; a test keeps the two equal).
MODELS = ("allcnn_c", "digits_cnn", "lenet5", "mlp", "resnet10", "resnet32")

class ConfigError(ValueError):
    """A config that cannot run; the message starts with the key at fault."""


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


def schema_errors(config: dict, schema_path: str | Path = SCHEMA) -> list[str]:
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


def validate(config: dict, schema_path: str | Path = SCHEMA) -> None:
    """Schema and cross-field checks; raises one ConfigError listing every problem found.

    Defaults from the schema are written into ``config``, so every later reader sees them.
    """
    problems = schema_errors(config, schema_path)
    if not problems:  # each dataset as the config names it, before its splits become datasets
        problems = [problem for name, spec in config["datasets"].items() for problem in _dataset_errors(name, spec)]
    if not problems:
        expand_splits(config)
        problems = cross_field_errors(config, datasets_checked=True)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def expand_splits(config: dict) -> None:
    """Each dataset with repeated ``splits`` becomes one dataset per split (``name_split1`` ..), in
    ``datasets``, ``study.datasets`` and the figures' dataset lists, so that every later reader (the
    plan, the rules, the figures) sees ordinary datasets: a repeat can then be a new split of the data."""
    expanded = {name: source_facts.split_datasets(name, settings) for name, settings in config["datasets"].items()}
    if all(list(parts) == [name] for name, parts in expanded.items()):
        return
    config["datasets"] = {part: settings for parts in expanded.values() for part, settings in parts.items()}

    def names(listed):
        return [part for name in listed for part in expanded.get(name, {name: None})]

    config["study"]["datasets"] = names(config["study"]["datasets"])
    for settings in config.get("figures", {}).values():
        if settings.get("datasets"):
            settings["datasets"] = names(settings["datasets"])


def _dataset_errors(name: str, spec: dict) -> list[str]:
    source = spec["source"]
    problems = [f"datasets.{name}.{key}: required for source {source}"
                for key in REQUIRED_KEYS.get(source, ()) if key not in spec]
    if source == "image_folder" and spec["image_size"]["crop"] > spec["image_size"]["resize"]:
        problems.append(f"datasets.{name}.image_size: crop {spec['image_size']['crop']} is larger than the "
                        f"resized shorter side {spec['image_size']['resize']}")
    if problems:
        return problems
    # The design against the data's class counts: a table's are read now, the embedded sets' are known.
    problems = design_errors(name, spec)
    facts = SOURCE_FACTS.get(source)
    # Tables and image folders are checked against their files (image folders when prepared); natural
    # pools and stratified test sets by the draws design_errors makes.
    if facts is None or problems or spec["train_per_class"] == NATURAL or test_kind(spec) != "balanced":
        return problems
    held_out = spec["validation_per_class"]
    if source in ALWAYS_POOLED or spec["split"] == "pooled":
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


def cross_field_errors(config: dict, datasets_checked: bool = False) -> list[str]:
    """What the schema cannot check: references between sections, and what the data can hold (each
    dataset's own settings unless ``datasets_checked``)."""
    datasets, protocols, methods, study = config["datasets"], config["protocols"], config["methods"], config["study"]
    references = [f"datasets.{name}.protocol: '{spec['protocol']}' is not among protocols {sorted(protocols)}"
                  for name, spec in datasets.items() if spec["protocol"] not in protocols]
    references += [f"study.datasets[{position}]: '{dataset}' is not among datasets {sorted(datasets)}"
                   for position, dataset in enumerate(study["datasets"]) if dataset not in datasets]
    references += [f"study.methods[{position}]: '{method}' is not among methods {sorted(methods)}"
                   for position, method in enumerate(study["methods"]) if method not in methods]
    problems = [f"datasets.{name}.model: '{spec['model']}' is not one of {sorted(MODELS)}"
                for name, spec in datasets.items() if spec["model"] not in MODELS]
    for name, spec in datasets.items() if not datasets_checked else ():
        problems.extend(_dataset_errors(name, spec))
    for name, settings in protocols.items():
        problems.extend(f"protocols.{name}: {error}" for error in _protocol_errors(settings))
    problems.extend(_figure_errors(config))
    if references:  # the checks below follow these references
        return references + problems
    for name in methods:
        for dataset in study["datasets"]:
            problems.extend(f"methods.{name}.train: {error}"
                            for error in _protocol_errors(method_protocol_settings(config, dataset, name)))
    problems.extend(_profile_errors(config))
    problems.extend(_method_errors(config))
    problems.extend(_augment_errors(config))
    problems.extend(_early_stopping_errors(config))
    return problems


def _early_stopping_errors(config: dict) -> list[str]:
    """Early stopping watches the validation split: every dataset must hold one out, and score it."""
    if not config["early_stopping"]["enabled"]:
        return []
    problems = [f"datasets.{dataset}: early_stopping watches the validation split; hold one out "
                f"(validation_per_class > 0, or validation_fraction > 0 for a stratified design)"
                for dataset in config["study"]["datasets"]
                if not (config["datasets"][dataset]["validation_per_class"]
                        or config["datasets"][dataset].get("validation_fraction"))]
    if "validation" not in config["scoring"]["splits"]:
        problems.append("scoring.splits: early_stopping watches the validation split, which is not scored; "
                        "add validation")
    return problems


def _protocol_errors(settings: dict) -> list[str]:
    try:
        Protocol.check(settings)
    except (ValueError, KeyError) as error:
        return [str(error)]
    return []


def _profile_errors(config: dict) -> list[str]:
    """Each mu must make a whole number of minority classes; every number must be finite."""
    problems = []
    for where, kind, grid in plan.profile_grids(config):
        for key in ("mu", "rho"):
            problems.extend(f"{where}.{key}[{position}]: {value} is not a finite number"
                            for position, value in enumerate(grid.get(key) or []) if not math.isfinite(value))
        if kind != "step":
            continue
        for dataset in config["study"]["datasets"]:
            n_classes = n_classes_of(config["datasets"][dataset])
            for position, mu in enumerate(grid["mu"] if n_classes is not None else []):
                try:
                    imbalance.step(mu, 1).n_minority(n_classes)
                except imbalance.ProfileError as error:
                    problems.append(f"{where}.mu[{position}]: {error} (dataset '{dataset}')")
    return problems


def model_layers(model: str, options: dict) -> list[str] | None:
    """The layers (child modules) of a model, built on the meta device (no memory, no weights); None
    when its options do not build. PyTorch is imported here only, and only for a config that names
    a second phase's layers: checking them now saves training every first phase before the second
    fails. None too where Snakemake itself runs without PyTorch (jobs in their own environments):
    the training job then checks them."""
    try:
        import torch

        from . import models
    except ImportError:
        return None

    shape = (8,) if model == "mlp" else (32, 32, 3)  # the names do not depend on the input's shape
    try:
        with torch.device("meta"):
            return [name for name, _ in models.build(model, 10, shape, options).named_children()]
    except ValueError:
        return None  # bad model_options: the training job reports them


def _method_errors(config: dict) -> list[str]:
    """Two-phase methods need their first phase's runs; a search on validation needs a validation split."""
    problems = []
    methods, study = config["methods"], config["study"]
    for name, settings in methods.items():
        problems.extend(_loss_errors(name, settings))
        two_phase = settings.get("two_phase")
        if not two_phase:
            continue
        source = two_phase["from"]
        if source not in methods:
            problems.append(f"methods.{name}.two_phase.from: '{source}' is not among methods {sorted(methods)}")
            continue
        # The paper's second phase fine-tunes a sampled set's network on the imbalanced set; cRT and
        # tau-normalisation start from any one-phase network (the baseline's, in Kang et al.).
        papers_form = two_phase["sampler"] == "none" and "tau_normalise" not in two_phase
        if methods[source].get("two_phase") or (papers_form and methods[source]["sampler"] == "none"):
            problems.append(f"methods.{name}.two_phase.from: '{source}' must be a one-phase method"
                            + (" with a sampler (over, under or class_balanced)" if papers_form else ""))
        if settings.get("model_options"):
            problems.append(f"methods.{name}.model_options: a second phase continues the network of '{source}'; "
                            f"set model_options on '{source}'")
        if "tau_normalise" in two_phase and (two_phase["sampler"] != "none" or two_phase["reinitialise"]
                                             or two_phase.get("layers")):
            problems.append(f"methods.{name}.two_phase: tau_normalise trains nothing, so sampler, reinitialise "
                            f"and layers do not apply; remove them")
        elif name in study["methods"] and source not in study["methods"]:
            problems.append(f"methods.{name}.two_phase.from: '{source}' must also be in study.methods, "
                            f"as {name} starts from its runs")
        if settings["sampler"] != "none":
            problems.append(f"methods.{name}.sampler: a two-phase method fine-tunes on the imbalanced set; "
                            f"set the sampler on '{source}' instead")
        for dataset in (study["datasets"] if name in study["methods"] and two_phase.get("layers") else []):
            spec = config["datasets"][dataset]
            known = model_layers(spec["model"], spec["model_options"]) if spec["model"] in MODELS else None
            unknown = [layer for layer in two_phase["layers"] if known is not None and layer not in known]
            if unknown:
                problems.append(f"methods.{name}.two_phase.layers: model {spec['model']} of dataset '{dataset}' "
                                f"has no layer {', '.join(unknown)}; its layers are {', '.join(known)}")
        for dataset in (study["datasets"] if name in study["methods"] else []):
            trained, needed = (searched(config, dataset, method) for method in (source, name))
            trained = [variant_name(source, lr) for lr in (trained["values"] if trained else [None])]
            missing = [variant_name(source, lr) for lr in (needed["values"] if needed else [None])
                       if variant_name(source, lr) not in trained]
            if missing:
                problems.append(f"methods.{name}.two_phase.from: '{name}' starts from runs {missing} on dataset "
                                f"'{dataset}', which '{source}' does not train ({trained}); give both "
                                f"methods the same lr_search")
    for dataset in study["datasets"]:
        for method in study["methods"]:
            search = searched(config, dataset, method)
            spec = config["datasets"][dataset]
            if search and search["select_on"] == "validation" and not (spec["validation_per_class"]
                                                                       or spec.get("validation_fraction")):
                problems.append(f"datasets.{dataset}.validation_per_class: the learning-rate search of method "
                                f"'{method}' selects on a validation split; set validation_per_class > 0 (or, "
                                f"for a stratified design, validation_fraction > 0) or select_on: test")
            if search and search["select_on"] not in config["scoring"]["splits"]:
                problems.append(f"scoring.splits: the learning-rate search of method '{method}' selects on the "
                                f"{search['select_on']} split, which is not scored; add {search['select_on']}")
    return problems


# The sources whose examples are images held in memory: what a protocol's augment crops and flips.
AUGMENTED_SOURCES = ("sklearn_digits", "torchvision_mnist", "torchvision_fashion_mnist", "torchvision_cifar10")


def _augment_errors(config: dict) -> list[str]:
    """Augmentation (a protocol's or a method's augment) only for in-memory images: a table has
    nothing to crop, an image folder crops and flips its images itself as it decodes them."""
    problems = []
    for dataset in config["study"]["datasets"]:
        spec = config["datasets"][dataset]
        if spec["source"] in AUGMENTED_SOURCES:
            continue
        why = ("an image folder crops and flips as it decodes (image_size)" if spec["source"] == "image_folder"
               else "its examples are rows of features")
        for method in config["study"]["methods"]:
            augment = method_protocol_settings(config, dataset, method).get("augment") or {}
            if not (augment.get("crop_padding") or augment.get("flip")):
                continue
            key = (f"methods.{method}.train.augment" if "augment" in config["methods"][method].get("train", {})
                   else f"protocols.{spec['protocol']}.augment")
            problem = (f"{key}: random crops and flips apply to in-memory image datasets only, not to dataset "
                       f"'{dataset}' (source {spec['source']}: {why}); set crop_padding 0 and flip false")
            if problem not in problems:
                problems.append(problem)
    return problems


def _loss_errors(name: str, settings: dict) -> list[str]:
    """Settings that would silently do nothing."""
    problems = []
    loss = settings["loss"]
    if loss["weights_from"] > 0 and loss["weights"] == "none":
        problems.append(f"methods.{name}.loss.weights_from: deferred re-weighting needs class weights; set "
                        f"loss.weights (inverse or effective_number)")
    if settings["sampler"] == "class_balanced" and settings["ratio"] != 1:
        problems.append(f"methods.{name}.ratio: the class_balanced sampler balances every batch; ratio applies "
                        f"to over and under only")
    return problems


def _figure_errors(config: dict) -> list[str]:
    """A figure's methods, datasets and profile must be the study's, and the splits it draws scored."""
    from .figures.catalog import FIGURES

    problems = []
    study = config["study"]
    profiles = {profile.name for profile, _ in plan.profile_seeds(config)}
    for figure, settings in config["figures"].items():
        problems.extend(f"figures.{figure}: draws the {split} split, which scoring.splits leaves out"
                        for split in FIGURES[figure].splits if split not in config["scoring"]["splits"])
        for key, known in (("methods", study["methods"]), ("datasets", study["datasets"])):
            for position, value in enumerate(settings.get(key) or []):
                if value not in known:
                    problems.append(f"figures.{figure}.{key}[{position}]: '{value}' is not among study.{key}")
        if settings.get("reference") is not None and settings["reference"] not in study["methods"]:
            problems.append(f"figures.{figure}.reference: '{settings['reference']}' is not among study.methods")
        if settings.get("profile") is not None and settings["profile"] not in profiles:
            problems.append(f"figures.{figure}.profile: '{settings['profile']}' is not a profile of this study "
                            f"({', '.join(sorted(profiles))})")
    return problems
