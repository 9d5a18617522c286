# Helpers shared by the rules: config validation, the grid of runs, and the file contract.

import sys
from pathlib import Path

# The package that does the work lives in src/ (the scripts find it through scripts/_src.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imbalance_study import study  # noqa: E402

study.validate(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

# The file contract: every stage reads and writes only these paths.
DATASET = "results/datasets/{dataset}.h5"
INDEX = "results/indices/{dataset}/{profile}/seed{seed}/{index}.npy"
MANIFEST = "results/runs/{dataset}/{profile}/seed{seed}/{method}/run.json"
SCORES = "results/runs/{dataset}/{profile}/seed{seed}/{method}/scores.csv"

RUNS = study.runs(config)


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    profile=r"[a-z]+-[^/]+",
    seed=r"\d+",
    method=r"[a-z][a-z0-9_]*(-lr[0-9.e+-]+)?",


def dataset_spec(wildcards):
    """Only what determines the dataset's content, so other dataset settings do not rebuild it."""
    spec = config["datasets"][wildcards.dataset]
    keys = ("source", "split", "train_per_class", "test_per_class", "seed", "root", "copy_from")
    return {key: spec[key] for key in keys if key in spec}


def minority_rule(wildcards):
    return config["datasets"][wildcards.dataset]["minority_classes"]


def training_index(wildcards):
    return INDEX.format(index=study.index_name(config, wildcards.method), dataset=wildcards.dataset,
                        profile=wildcards.profile, seed=wildcards.seed)


def phase_one_manifest(wildcards):
    """The first-phase run a two-phase run starts from (nothing for one-phase methods)."""
    method = study.phase_one_method(config, wildcards.method)
    if method is None:
        return []
    return MANIFEST.format(dataset=wildcards.dataset, profile=wildcards.profile, seed=wildcards.seed,
                           method=method)


def imbalanced_index(wildcards):
    return INDEX.format(index="imbalanced", dataset=wildcards.dataset, profile=wildcards.profile,
                        seed=wildcards.seed)


def run_model(wildcards):
    return config["datasets"][wildcards.dataset]["model"]


def run_protocol(wildcards):
    return study.method_protocol(config, wildcards.dataset, wildcards.method)


def score_files(runs):
    return [SCORES.format(**vars(run)) for run in runs]


def fig3_scores(wildcards):
    methods = config["figures"].get("fig3", {}).get("methods") or config["study"]["methods"]
    return score_files(run for run in RUNS if run.profile.startswith("step-") and run.method in methods)
