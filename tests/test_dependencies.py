"""Dependency tracking follows the settings, key by key of the config schema.

For every key the schema describes, ``EFFECTS`` says what changing it must rerun in a study that
uses it: the jobs whose result depends on it directly, and (Snakemake's rule) every job downstream
of those. A finished study is dry-run once per key with that key changed, and the jobs Snakemake
plans must be exactly those. Keys that cannot change a result (the engine, the device, how often
state is saved) may rerun a job but must not retrain a network: a real run checks that. A key added
to the schema without an entry here fails ``test_every_schema_key_has_a_declared_effect``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Callable

import pytest
import yaml

from imbalance_study import plan, source_facts

from .conftest import REPO
from .snakemake_batch import run_all
from .test_workflow import run_manifests, snakemake

pytestmark = pytest.mark.workflow

# Every run is its own job (distinct protocols), so that a key's effect can be told job by job: per
# profile, baseline at two searched learning rates, over, and the second phase from over.
BASE = {
    "datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 30, "validation_per_class": 5,
                            "test_per_class": 10, "model": "digits_cnn", "protocol": "tiny"}},
    "protocols": {"tiny": {"iterations": 20, "batch_size": 8, "lr": 0.02, "checkpoints": [10, 20], "resume_every": 10,
                           "lr_policy": {"name": "inv", "gamma": 0.001, "power": 0.75}}},
    "methods": {"baseline": {"sampler": "none", "train": {"lr_search": {"values": [0.05, 0.01]}}},
                "over": {"sampler": "over"}, "twophase_over": {"two_phase": {"from": "over"}}},
    "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline", "over", "twophase_over"],
              "profiles": {"step": {"mu": [0.5], "rho": [5]}, "linear": {"rho": [5]}}},
    "scoring": {"silhouette_per_class": 5},
    "figures": {"fig3": {}, "fig4": {}, "fig5": {}, "fig6": {}, "fig7": {"rho": 5}, "fig8": {}, "dynamics": {},
                "table4": {}, "published": {"paper": {"digits": "cifar10_lt"}},  # (claimed: else not drawn)
                "comparison": {}},
}
STEP, LINEAR = "step-mu0.5-rho5", "linear-rho5"
BUNDLES = {"baseline-lr0.05": "bundle00", "baseline-lr0.01": "bundle01", "over": "bundle02", "twophase_over": "bundle03"}


@dataclass(frozen=True)
class Job:
    rule: str
    output: str  # its first output ("" for rule all)


def planned(output: str) -> set[Job]:
    """The jobs of a dry run's listing."""
    jobs, rule = set(), None
    for line in output.splitlines():
        started = re.match(r"^(?:local)?rule (\w+):$", line)
        if started:
            if rule == "all":
                jobs.add(Job("all", ""))
            rule = started[1]
        elif rule and line.startswith("    output: "):
            jobs.add(Job(rule, line[len("    output: "):].split(", ")[0]))
            rule = None
    if rule == "all":
        jobs.add(Job("all", ""))
    return jobs


@dataclass
class Dag:
    """The finished study's jobs, with what each reads: to follow a change downstream."""

    inputs: dict[Job, set[str]] = field(default_factory=dict)
    outputs: dict[Job, set[str]] = field(default_factory=dict)

    def downstream(self, jobs: set[Job]) -> set[Job]:
        result, frontier = set(jobs), set(jobs)
        while frontier:
            written = set().union(*(self.outputs[job] for job in frontier))
            frontier = {job for job, read in self.inputs.items() if read & written} - result
            result |= frontier
        return result

    def select(self, rule: str, *parts: str) -> set[Job]:
        return {job for job in self.inputs if job.rule == rule and all(part in job.output for part in parts)}


def parse_dag(output: str) -> Dag:
    dag, job = Dag(), None
    for line in output.splitlines():
        started = re.match(r"^(?:local)?rule (\w+):$", line)
        if started:
            job = {"rule": started[1], "input": [], "output": []}
        elif job is not None and re.match(r"^    (input|output): ", line):
            key, _, files = line.strip().partition(": ")
            job[key] = files.split(", ")
        elif job is not None and line.startswith("    jobid:"):
            key = Job(job["rule"], job["output"][0] if job["output"] else "")
            dag.inputs[key], dag.outputs[key] = set(job["input"]), set(job["output"])
            job = None
    return dag


def bundle(profile: str, variant: str) -> str:
    return f"results/bundles/digits/{profile}/{BUNDLES[variant]}-1runs"


# What changing a key must rerun, given the finished study's DAG: the jobs whose result depends on it
# (and, through dag.downstream, what reads them). Always also provenance (the config's record) and all.
def nothing(dag):
    return set()


def everything(dag):
    return dag.downstream(dag.select("prepare_dataset"))


def index_files(dag):
    return dag.downstream(dag.select("indices"))


def every_bundle(dag):
    return dag.downstream(dag.select("train_bundle"))


def bundles_of(*variants):
    return lambda dag: dag.downstream({job for variant in variants for profile in (STEP, LINEAR)
                                       for job in dag.select("train_bundle", bundle(profile, variant))})


AGGREGATE = Job("aggregate_scores", plan.SCORES)


def new_cell(profile, dataset="digits"):
    """The jobs of an imbalanced set the study did not have: its index files and its four jobs of runs."""
    return {Job("indices", f"results/indices/{dataset}/{profile}/indices.json")} | {
        Job("train_bundle", f"results/bundles/{dataset}/{profile}/bundle0{number}-1runs/scores.csv")
        for number in range(4)}


def renamed(jobs, old, new):
    """The same jobs with ``old`` in their output renamed ``new`` (a job that now holds other runs)."""
    return {Job(job.rule, job.output.replace(old, new)) for job in jobs}


def every_figure(dag):
    return dag.select("figure") | dag.select("comparison")  # the comparison has its own rule (its page)


def figure(name):
    return lambda dag: dag.downstream({job for job in every_figure(dag) if f"figures/{name}." in job.output})


@dataclass(frozen=True)
class Effect:
    change: Callable[[dict], None]  # changes the key in a copy of BASE
    reruns: Callable  # the finished study's DAG -> the jobs a dry run must plan (besides provenance, all)
    retrains: bool = True  # False: the jobs may rerun, but no run may be trained again


def setting(path: str, value) -> Callable[[dict], None]:
    def change(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


def together(*changes):
    def change(config):
        for one in changes:
            one(config)
    return change


OTHER_SOURCES = "not read for sklearn_digits (a key of another source)"
D, P = "datasets.digits", "protocols.tiny"
FIGURE_KEYS = {"fig3": ("metric", "methods", "iteration", "datasets"), "fig4": ("metric", "methods", "iteration", "datasets"),
               "fig5": ("metric", "methods", "iteration", "datasets", "imbalance"),
               "fig6": ("metric", "methods", "iteration", "datasets"),
               "fig7": ("rho", "metric", "methods", "iteration", "datasets", "layout"),
               "fig8": ("profile", "metric", "methods", "datasets"), "dynamics": ("profile", "methods", "datasets"),
               "table4": ("metric", "methods", "iteration", "datasets", "layout", "run_columns"),
               "published": ("methods", "iteration", "datasets"),
               "comparison": ("metric", "reference", "confidence", "methods", "datasets")}
FIGURE_CHANGES = {"metric": "accuracy", "methods": ["baseline", "over"], "iteration": 10, "datasets": ["digits"],
                  "imbalance": "exponential", "rho": 2, "profile": LINEAR, "run_columns": 1, "reference": "over",
                  "confidence": 0.9}
LAYOUT_CHANGES = {"fig7": "per_minority", "table4": "settings_rows"}

# A protocol key -> a new value for the protocol's setting it is part of (lr_policy and checkpoints
# are replaced whole).
PROTOCOL_CHANGES = {
    "iterations": 30, "batch_size": 6, "lr": 0.03, "momentum": 0.5, "weight_decay": 0.001,
    "momentum_form": "pytorch", "precision": "bf16", "resume_every": 5, "checkpoints": [5, 20],
    "checkpoints.spacing": {"spacing": "log", "count": 2}, "checkpoints.count": {"count": 4},
    "checkpoints.first": {"spacing": "log", "count": 2, "first": 3},
    "lr_policy.name": {"name": "fixed"}, "lr_policy.gamma": {"name": "inv", "gamma": 0.01, "power": 0.75},
    "lr_policy.power": {"name": "inv", "gamma": 0.001, "power": 0.5},
    "lr_policy.steps": {"name": "multistep", "steps": [10]},
    "lr_policy.warmup": {"name": "inv", "gamma": 0.001, "power": 0.75, "warmup": 5}, "optimizer": "adamw",
    "augment.crop_padding": {"crop_padding": 1}, "augment.flip": {"flip": True},
}


def in_epochs(path: str) -> Callable[[dict], None]:
    """A protocol (or a method's overrides) given in epochs: one epoch, checkpointed at its end."""
    def change(config):
        node = config
        for key in path.split("."):
            node = node.setdefault(key, {})
        node.pop("iterations", None)
        node.update(epochs=1, checkpoints={"spacing": "epoch"})
    return change


EFFECTS: dict[str, Effect] = {
    "device": Effect(setting("device", "cpu"), every_bundle, retrains=False),
    "datasets.*.source": Effect(together(setting(f"{D}.source", "sklearn_breast_cancer"), setting(f"{D}.model", "mlp"),
                                         setting("scoring.silhouette_per_class", 5)), everything),
    **{f"datasets.*.{key}": Effect(setting(f"{D}.{key}", value), nothing) for key, value in (
        ("root", "elsewhere"), ("copy_from", "elsewhere"), ("path", "table.csv"), ("label_column", "y"),
        ("train_root", "elsewhere"), ("test_root", "elsewhere"), ("n_classes", 10), ("preprocessing", "none"),
        ("split", "pooled"), ("feature_columns", ["a"]), ("categorical_columns", ["a"]), ("missing", "impute"),
        # read only with a stratified test set
        ("test_fraction", 0.3))},
    # A stratified test set, held-out validation share or split of it: another dataset file.
    "datasets.*.test": Effect(setting(f"{D}.test", "stratified"), everything),
    "datasets.*.validation_fraction": Effect(together(setting(f"{D}.test", "stratified"),
                                                      setting(f"{D}.validation_per_class", 0),
                                                      setting(f"{D}.validation_fraction", 0.1)), everything),
    **{f"datasets.*.{key}": Effect(together(setting(f"{D}.test", "stratified"), setting(f"{D}.splits", splits),
                                            setting(f"{D}.split_index", index)), everything)
       for key, splits, index in (("splits.kind", {"kind": "kfold", "count": 3}, 1),
                                  ("splits.count", {"kind": "holdout", "count": 3}, 1),
                                  ("split_index", {"kind": "holdout", "count": 3}, 2))},
    "datasets.*.image_size.resize": Effect(setting(f"{D}.image_size", {"resize": 40}), nothing),
    "datasets.*.image_size.crop": Effect(setting(f"{D}.image_size", {"crop": 30}), nothing),
    "datasets.*.model_options": Effect(together(setting(f"{D}.model", "mlp"), setting(f"{D}.model_options",
                                                                                       {"hidden": [8]})), every_bundle),
    "datasets.*.validation_per_class": Effect(setting(f"{D}.validation_per_class", 6), everything),
    "datasets.*.train_per_class": Effect(setting(f"{D}.train_per_class", 28), everything),
    "datasets.*.test_per_class": Effect(setting(f"{D}.test_per_class", 12), everything),
    "datasets.*.seed": Effect(setting(f"{D}.seed", 3), everything),
    "datasets.*.minority_classes": Effect(setting(f"{D}.minority_classes", "lowest"), index_files),
    "datasets.*.model": Effect(setting(f"{D}.model", "mlp"), every_bundle),
    # The same protocol under another name: the runs' settings do not change, the captions that name
    # the protocol do.
    "datasets.*.protocol": Effect(together(setting("protocols.other", BASE["protocols"]["tiny"]),
                                           setting(f"{D}.protocol", "other")), every_figure),
    # A protocol's settings reach every run that trains under it (its learning rate not baseline's,
    # which searches its own); a method's overrides (methods.*.train) only that method's runs and the
    # second phases that start from them. resume_every changes no result.
    **{f"protocols.*.{key}": Effect(setting(f"{P}.{key.split('.')[0]}", value),
                                    bundles_of("over", "twophase_over") if key == "lr" else every_bundle,
                                    retrains=key != "resume_every")
       for key, value in PROTOCOL_CHANGES.items()},
    **{f"methods.*.train.{key}": Effect(setting(f"methods.over.train.{key.split('.')[0]}", value),
                                        bundles_of("over"), retrains=key != "resume_every")
       for key, value in PROTOCOL_CHANGES.items()},
    # Epochs instead of iterations: other lengths and checkpoints.
    "protocols.*.epochs": Effect(in_epochs(P), every_bundle),
    "methods.*.train.epochs": Effect(in_epochs("methods.over.train"), bundles_of("over")),
    # Adam's settings: SGD (this protocol's optimiser) reads none of them.
    **{f"{where}.{key}": Effect(setting(f"{node}.{key}", value), nothing)
       for where, node in (("protocols.*", P), ("methods.*.train", "methods.over.train"))
       for key, value in (("betas", [0.8, 0.99]), ("eps", 1e-6))},
    # The search of one method (methods.*.train), here baseline's: its runs only. A new learning rate
    # is a new run in the job of the one it replaces.
    "methods.*.train.lr_search.values": Effect(setting("methods.baseline.train.lr_search.values", [0.05, 0.005]),
                                               bundles_of("baseline-lr0.01")),
    "methods.*.train.lr_search.select_on": Effect(setting("methods.baseline.train.lr_search.select_on", "test"),
                                                  bundles_of("baseline-lr0.05", "baseline-lr0.01")),
    "methods.*.train.lr_search.metric": Effect(setting("methods.baseline.train.lr_search.metric", "accuracy"),
                                               bundles_of("baseline-lr0.05", "baseline-lr0.01")),
    # A search in the protocol reaches the methods without their own: over and its second phase become
    # searched runs (over-lr0.02, in the jobs that held over); baseline keeps its own search.
    **{f"protocols.*.lr_search.{key}": Effect(setting(f"{P}.lr_search", {"values": [0.02], **extra}),
                                              bundles_of("over", "twophase_over"))
       for key, extra in (("values", {}), ("select_on", {"select_on": "test"}), ("metric", {"metric": "accuracy"}))},
    "methods.*.sampler": Effect(setting("methods.over.sampler", "under"), index_files),
    "methods.*.ratio": Effect(setting("methods.over.ratio", 2), index_files),
    # The layers a second phase trains: its runs, and the captions that name them.
    "methods.*.two_phase.layers": Effect(setting("methods.twophase_over.two_phase.layers", ["fc1", "fc2"]),
                                         bundles_of("twophase_over")),
    # A loss's settings: the runs of its method (each checked where its loss reads it).
    **{f"methods.*.loss.{key}": Effect(setting("methods.over.loss", value), bundles_of("over")) for key, value in (
        ("name", {"name": "focal"}), ("weights", {"weights": "inverse"}),
        ("beta", {"weights": "effective_number", "beta": 0.99}), ("weights_from", {"weights": "inverse", "weights_from": 0.5}),
        ("gamma", {"name": "focal", "gamma": 1.0}), ("max_margin", {"name": "ldam", "max_margin": 0.3}),
        ("scale", {"name": "ldam", "scale": 2.0}), ("tau", {"name": "logit_adjusted", "tau": 0.5}))},
    "methods.*.model_options": Effect(setting("methods.over.model_options", {"init": "glorot"}), bundles_of("over")),
    "methods.*.two_phase.sampler": Effect(setting("methods.twophase_over.two_phase.sampler", "class_balanced"),
                                          bundles_of("twophase_over")),
    "methods.*.two_phase.reinitialise": Effect(setting("methods.twophase_over.two_phase.reinitialise", True),
                                               bundles_of("twophase_over")),
    "methods.*.two_phase.tau_normalise": Effect(setting("methods.twophase_over.two_phase",
                                                        {"from": "over", "tau_normalise": 1.0}),
                                                bundles_of("twophase_over")),
    "methods.*.two_phase.lr_factor": Effect(setting("methods.twophase_over.two_phase.lr_factor", 0.5),
                                            bundles_of("twophase_over")),
    # Another first phase: twophase_over now starts from the runs of a new method under, which joins
    # over's job (one protocol: bundle02 holds two runs); the new index files rerun every job of their
    # profile.
    "methods.*.two_phase.from": Effect(
        together(setting("methods.under", {"sampler": "under"}),
                 setting("study.methods", ["baseline", "over", "under", "twophase_over"]),
                 setting("methods.twophase_over.two_phase.from", "under")),
        lambda dag: renamed(index_files(dag), "bundle02-1runs", "bundle02-2runs")),
    # The grid itself: new imbalanced sets, seeds or datasets are new jobs.
    "study.datasets": Effect(together(setting("datasets.cancer", {"source": "sklearn_breast_cancer", "train_per_class": 30,
                                                                  "validation_per_class": 5, "test_per_class": 10,
                                                                  "model": "mlp", "protocol": "tiny"}),
                                      setting("study.datasets", ["digits", "cancer"])),
                             lambda dag: {Job("prepare_dataset", "results/datasets/cancer.h5")} | new_cell(STEP, "cancer")
                             | new_cell(LINEAR, "cancer") | {AGGREGATE}
                             # published draws only the dataset that claims CIFAR-10-LT (digits), not cancer
                             | (every_figure(dag) - dag.select("figure", "figures/published."))),
    # A second seed: every job of the grid now holds two runs.
    "study.seeds": Effect(setting("study.seeds", [1, 2]), lambda dag: renamed(index_files(dag), "-1runs", "-2runs")),
    # Without the second phase: every figure but fig7 (which never draws second phases) loses runs.
    "study.methods": Effect(setting("study.methods", ["baseline", "over"]),
                            lambda dag: {AGGREGATE} | every_figure(dag) - figure("fig7")(dag)),
    # A profile with fewer minority classes: a new set, and the figures of step profiles (and the
    # comparison, of every profile); fig8 and dynamics keep the middle of the grid (mu 0.5, the upper
    # middle of two); fig5 draws linear profiles.
    "study.profiles.step.mu": Effect(setting("study.profiles.step.mu", [0.5, 0.2]),
                                     lambda dag: new_cell("step-mu0.2-rho5") | {AGGREGATE}
                                     | {job for name in ("fig3", "fig4", "fig6", "fig7", "table4", "comparison", "published")
                                        for job in figure(name)(dag)}),
    # A smaller rho: the figures of step profiles (fig3, fig4, fig6, table4) and fig7's caption, which
    # names the step grid; fig8 and dynamics keep the middle of the grid (rho 5, the upper middle of two).
    "study.profiles.step.rho": Effect(setting("study.profiles.step.rho", [5, 2]),
                                      lambda dag: new_cell("step-mu0.5-rho2") | {AGGREGATE}
                                      | {job for name in ("fig3", "fig4", "fig6", "fig7", "table4", "comparison", "published")
                                         for job in figure(name)(dag)}),
    # A grid's own seeds: its set is drawn for them, and every caption says the study's seeds hold
    # only where a grid names none.
    "study.profiles.step.seeds": Effect(setting("study.profiles.step.seeds", [2]),
                                        lambda dag: dag.downstream(dag.select("indices", STEP)) | every_figure(dag)),
    "study.profiles.linear.rho": Effect(setting("study.profiles.linear.rho", [5, 2]),
                                        lambda dag: new_cell("linear-rho2") | {AGGREGATE} | figure("fig5")(dag)
                                        | figure("comparison")(dag) | figure("published")(dag)),
    "study.profiles.linear.seeds": Effect(setting("study.profiles.linear.seeds", [2]),
                                          lambda dag: dag.downstream(dag.select("indices", LINEAR)) | every_figure(dag)),
    # An exponential profile: only the comparison, of every profile, draws one (fig5 draws linear ones).
    "study.profiles.exponential.rho": Effect(setting("study.profiles.exponential", {"rho": [5]}),
                                             lambda dag: new_cell("exponential-rho5") | {AGGREGATE}
                                             | figure("comparison")(dag) | figure("published")(dag)),
    "study.profiles.exponential.seeds": Effect(setting("study.profiles.exponential", {"rho": [5], "seeds": [2]}),
                                               lambda dag: new_cell("exponential-rho5") | {AGGREGATE}
                                               | every_figure(dag)),
    # The data's own counts (here the balanced pool as it is): a new set, its own seeds named in every caption.
    "study.profiles.natural.seeds": Effect(setting("study.profiles.natural", {"seeds": [2]}),
                                           lambda dag: new_cell("natural") | {AGGREGATE} | every_figure(dag)),
    # With one seed its set is drawn with its own seed either way (tests/test_paper_grids.py shows two
    # repeats sharing their files); the captions say what a repeat changes.
    "study.repeats": Effect(setting("study.repeats", "same_data"), every_figure),
    # Every run is alone in its job already: smaller jobs change nothing.
    "engine.runs_per_job": Effect(setting("engine.runs_per_job", 1), nothing),
    "engine.stack": Effect(setting("engine.stack", "always"), every_bundle, retrains=False),
    "engine.conv": Effect(setting("engine.conv", "gemm"), every_bundle, retrains=False),
    "engine.graphs": Effect(setting("engine.graphs", "auto"), every_bundle, retrains=False),
    # (the search selects on validation, fig8 and dynamics draw train and test: all three are needed)
    "scoring.splits": Effect(setting("scoring.splits", ["validation", "test", "train"]), every_bundle,
                             retrains=False),
    "scoring.store_predictions": Effect(setting("scoring.store_predictions", ["test"]), every_bundle, retrains=False),
    "scoring.silhouette_per_class": Effect(setting("scoring.silhouette_per_class", 3), every_bundle, retrains=False),
    "scoring.train_sample_per_class": Effect(setting("scoring.train_sample_per_class", 3), every_bundle,
                                             retrains=False),
    "scoring.logit_adjustment_taus": Effect(setting("scoring.logit_adjustment_taus", [0.25]), every_bundle,
                                            retrains=False),
    # Early stopping is decided from the scores: the table and every figure, nothing trained or scored.
    "early_stopping.enabled": Effect(setting("early_stopping.enabled", True),
                                     lambda dag: {AGGREGATE} | every_figure(dag), retrains=False),
    # ... and while it is off, its other settings change nothing.
    "early_stopping.metric": Effect(setting("early_stopping.metric", "roc_auc"), nothing),
    "early_stopping.patience": Effect(setting("early_stopping.patience", 2), nothing),
    "early_stopping.min_delta": Effect(setting("early_stopping.min_delta", 0.01), nothing),
    "early_stopping.restore_best": Effect(setting("early_stopping.restore_best", False), nothing),
    **{f"figures.{name}.{key}": Effect(setting(f"figures.{name}.{key}",
                                               LAYOUT_CHANGES[name] if key == "layout" else FIGURE_CHANGES[key]),
                                       figure(name))
       for name, keys in FIGURE_KEYS.items() for key in keys},
    # Claiming that a dataset repeats one of the paper's experiments draws its published numbers.
    **{f"figures.{name}.paper.*": Effect(setting(f"figures.{name}.paper", {"digits": "imagenet"}), figure(name))
       for name in ("fig3", "fig4", "table4")},
    # (accuracy is their default)
    "figures.fig6.metric": Effect(setting("figures.fig6.metric", "roc_auc"), figure("fig6")),
    "figures.fig8.metric": Effect(setting("figures.fig8.metric", "roc_auc"), figure("fig8")),
}
NOT_APPLICABLE = {key: OTHER_SOURCES for key in ("root", "copy_from", "path", "label_column", "train_root",
                                                 "test_root", "n_classes", "preprocessing", "split", "image_size",
                                                 "feature_columns", "categorical_columns", "missing")}
# A figure with nothing to draw after the change is not drawn at all: nothing reruns.
EFFECTS["figures.fig5.imbalance"] = Effect(setting("figures.fig5.imbalance", "exponential"), nothing)
EFFECTS["figures.fig7.rho"] = Effect(setting("figures.fig7.rho", 2), nothing)
# ``published`` draws only the datasets that repeat an experiment with published top-1 errors: disclaimed, none.
EFFECTS["figures.published.paper.*"] = Effect(setting("figures.published.paper", {}), nothing)


def resolved(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def schema_keys(node: dict, schema: dict, path: str = "") -> set[str]:
    """Every settable key of the schema, as ``a.*.b`` (``*`` for a name the user picks)."""
    node = resolved(node, schema)
    keys = set()
    for alternative in node.get("oneOf", []):
        keys |= schema_keys(alternative, schema, path)
    if node.get("type") == "array" and "properties" in resolved(node.get("items", {}), schema):
        return keys | schema_keys(node["items"], schema, path)  # a list of grids: each grid's keys
    children = node.get("properties") or {}
    for name, child in children.items():
        keys |= schema_keys(child, schema, f"{path}.{name}".lstrip("."))
    if isinstance(node.get("additionalProperties"), dict):
        keys |= schema_keys(node["additionalProperties"], schema, f"{path}.*".lstrip("."))
    if not children and not keys and path:
        keys.add(path)
    return keys


def test_every_schema_key_has_a_declared_effect():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = schema_keys(schema, schema)
    assert keys - set(EFFECTS) == set(), "keys of the schema whose effect on the jobs is not declared here"
    assert set(EFFECTS) - keys == set(), "declared keys the schema does not have"
    assert {f"datasets.*.{key}" for key in NOT_APPLICABLE} - {"datasets.*.image_size"} <= keys


def test_the_keys_digits_does_not_read_are_content_of_the_sources_that_do():
    """Changing them reruns nothing here (EFFECTS) because digits does not read them; the sources
    that read them rebuild their dataset when they change. That the dataset rule passes everything a
    source reads is shown by the dataset tests: each source is prepared from exactly these settings
    (tests/fixtures.dataset_settings), with no default of the code's own to fall back on."""
    read = {key for keys in source_facts.SOURCE_CONTENT_KEYS.values() for key in keys}
    assert set(NOT_APPLICABLE) <= read
    assert not set(NOT_APPLICABLE) & set(source_facts.CONTENT_KEYS + source_facts.SOURCE_CONTENT_KEYS["sklearn_digits"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dependencies")
    snakemake(workdir, config=copy.deepcopy(BASE))
    dag = parse_dag(snakemake(workdir, "-n", "-F", config=copy.deepcopy(BASE)))
    assert len(dag.select("train_bundle")) == 8 and len(dag.select("figure")) == 9
    assert len(dag.select("comparison")) == 1
    return workdir, dag


def dry_runs(workdir, configs: dict[str, dict]) -> dict[str, str]:
    """``snakemake -n`` on each config (by name) in the finished study, two at a time, all in one
    Python start-up (tests/snakemake_batch.py): each one's output, as test_workflow.snakemake gives it."""
    commands = {}
    for name, config in configs.items():
        path = workdir / (re.sub(r"\W", "_", name) + ".yaml")
        path.write_text(yaml.safe_dump(config))
        commands[name] = ["--snakefile", REPO / "Snakefile", "--directory", workdir, "--configfile", path,
                          "--cores", "2", "-n"]
    results = run_all(commands, workdir.parent / f"{workdir.name}-dry-runs", parallel=2)
    failed = {name: result.stdout + result.stderr for name, result in results.items() if result.returncode != 0}
    assert not failed, "\n".join(f"{name}:\n{output}" for name, output in failed.items())
    return {name: result.stdout + result.stderr for name, result in results.items()}


def changed(key: str) -> dict:
    config = copy.deepcopy(BASE)
    EFFECTS[key].change(config)
    return config


def test_changing_each_key_plans_exactly_the_jobs_that_depend_on_it(finished):
    workdir, dag = finished
    keys = sorted(EFFECTS)
    outputs = dry_runs(workdir, {key: changed(key) for key in keys})
    always = {Job("provenance", plan.PROVENANCE), Job("all", "")}  # the config's record follows every change
    wrong = {}
    for key in keys:
        jobs, expected = planned(outputs[key]), EFFECTS[key].reruns(dag) | always
        if jobs != expected:
            wrong[key] = {"planned, not expected": sorted(f"{job.rule} {job.output}" for job in jobs - expected),
                          "expected, not planned": sorted(f"{job.rule} {job.output}" for job in expected - jobs)}
    assert not wrong, json.dumps(wrong, indent=1)


def test_the_papers_case_a_new_selection_metric_rescores_and_reselects(finished, tmp_path):
    """lr_search.metric alone changed: the jobs of the searched runs run again (no network is trained
    again) and the table records, and selects on, the new metric."""
    import shutil

    import pandas as pd

    workdir = tmp_path / "study"
    shutil.copytree(finished[0], workdir, symlinks=True)
    before = run_manifests(workdir)
    (workdir / "metric.yaml").write_text(yaml.safe_dump(changed("methods.*.train.lr_search.metric")))
    # (the table: what the figures redraw after a change is the dry runs' above)
    snakemake(workdir, plan.SCORES, configfiles=[workdir / "metric.yaml"])
    assert run_manifests(workdir) == before
    table = pd.read_csv(workdir / "results" / "scores.csv")
    searched = table[table["method"] == "baseline"]
    assert set(searched["select_metric"]) == {"accuracy"} and set(searched["select_on"]) == {"validation"}
    assert set(table.loc[table["method"] != "baseline", "select_metric"].fillna("")) == {""}


def test_keys_that_change_no_result_retrain_nothing(finished, tmp_path):
    """The engine, the device, the resume cadence and the scoring settings, all changed at once: the
    jobs run again and score again, but every run's manifest stays as it was."""
    import shutil

    workdir = tmp_path / "study"
    shutil.copytree(finished[0], workdir, symlinks=True)
    before = run_manifests(workdir)
    config = copy.deepcopy(BASE)
    for key, effect in EFFECTS.items():
        if not effect.retrains:
            effect.change(config)
    (workdir / "settings.yaml").write_text(yaml.safe_dump(config))
    output = snakemake(workdir, plan.SCORES, configfiles=[workdir / "settings.yaml"])
    assert "train_bundle" in output
    assert run_manifests(workdir) == before
