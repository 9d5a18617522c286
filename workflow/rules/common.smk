# Helpers shared by the rules: config validation, the grid of runs, and the file contract.

import sys
from pathlib import Path

# The package that does the work lives in src/ (the scripts find it through scripts/_src.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imbalance_study import study  # noqa: E402

study.validate(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

# The file contract: every stage reads and writes only these paths.
DATASET = "results/datasets/{dataset}.h5"
INDICES = "results/indices/{dataset}/{profile}/indices.json"  # lists the index files below
INDEX = "results/indices/{dataset}/{profile}/seed{seed}/{index}.npy"
# A bundle's job writes its two declared outputs, and under RUN_DIR each of its runs' checkpoints,
# run.json (the run's manifest) and predictions.h5.
BUNDLE_SCORES = "results/bundles/{dataset}/{profile}/{bundle}-{n_runs}runs/scores.csv"
BUNDLE_RUNS = "results/bundles/{dataset}/{profile}/{bundle}-{n_runs}runs/runs.json"
RUN_DIR = "results/runs/{dataset}/{profile}/seed{seed}/{method}"

RUNS = study.runs(config)
BUNDLES = study.bundles(config, RUNS)
BUNDLE_BY_NAME = {(bundle.dataset, bundle.profile, bundle.name): bundle for bundle in BUNDLES}
SEEDS_OF_PROFILE = dict(study.profile_cells(config))


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    profile=r"[a-z]+-[^/]+",
    bundle=r"bundle\d+",
    n_runs=r"\d+",


def bundle_path(template, bundle):
    return template.format(dataset=bundle.dataset, profile=bundle.profile, bundle=bundle.name, n_runs=len(bundle.runs))


def bundle_of(wildcards):
    bundle = BUNDLE_BY_NAME.get((wildcards.dataset, wildcards.profile, wildcards.bundle))
    if bundle is None or len(bundle.runs) != int(wildcards.n_runs):
        raise ValueError(f"{wildcards.dataset}/{wildcards.profile}/{wildcards.bundle}-{wildcards.n_runs}runs "
                         "is not a bundle of this study (the config or engine.runs_per_job changed?)")
    return bundle


def bundle_members(wildcards):
    return study.bundle_members(config, bundle_of(wildcards))


def phase_one_bundles(wildcards):
    """The bundles holding the first phases of a bundle's two-phase runs (none for one-phase runs)."""
    bundle = bundle_of(wildcards)
    return [bundle_path(BUNDLE_RUNS, BUNDLE_BY_NAME[(bundle.dataset, bundle.profile, name)]) for name in bundle.after]


def profile_index_names(wildcards):
    """The index files the methods of the study train on, for this dataset."""
    return sorted({study.index_name(config, method) for run_method in config["study"]["methods"]
                   for method in study.method_variants(config, wildcards.dataset, run_method)})


def bundle_scores(bundles):
    return [bundle_path(BUNDLE_SCORES, bundle) for bundle in bundles]


def dataset_spec(wildcards):
    """Only what determines the dataset's content, so other dataset settings do not rebuild it."""
    spec = config["datasets"][wildcards.dataset]
    keys = ["source", "split", "train_per_class", "test_per_class", "seed", "root", "copy_from"]
    keys += {"torchvision_cifar10": ["preprocessing"], "csv": ["path", "label_column"],
             "image_folder": ["train_root", "test_root", "n_classes", "image_size"]}.get(spec["source"], [])
    if spec.get("validation_per_class"):
        keys.append("validation_per_class")
    return {key: spec[key] for key in keys if key in spec}


def minority_rule(wildcards):
    return config["datasets"][wildcards.dataset]["minority_classes"]


def figure_settings(name):
    return config["figures"].get(name, {})


def figure_runs(name):
    return study.figure_runs(config, name, RUNS)


def figure_profile(wildcards):
    """The one profile fig8 and dynamics draw (named in their settings, else the default); None for others."""
    if wildcards.figure not in ("fig8", "dynamics"):
        return None
    return figure_settings(wildcards.figure).get("profile") or study.fig8_default_profile(config)


def figure_run_keys(wildcards):
    return [(run.dataset, run.profile, run.seed, run.method) for run in figure_runs(wildcards.figure)]


def figure_scores(wildcards):
    """The score tables of the bundles that hold the figure's runs: only those, so that one figure
    can be built alone."""
    runs = set(figure_runs(wildcards.figure))
    files = bundle_scores(bundle for bundle in BUNDLES if runs.intersection(bundle.runs))
    if not files:
        raise ValueError(f"figures/{wildcards.figure}.pdf: no runs of this study feed it "
                         f"(see config key figures.{wildcards.figure} and study.profiles)")
    return files


def drawn_figures():
    """What `snakemake` draws: every configured figure that has runs to draw from."""
    targets = []
    for name in config["figures"]:
        if not figure_runs(name):
            logger.warning(f"figures.{name}: no runs of this study feed it; not drawn")
        elif name == "table4":
            targets += ["figures/table4.pdf", "figures/table4.csv"]
        else:
            targets.append(f"figures/{name}.pdf")
    return targets
