# Helpers shared by the rules: config validation, the grid of runs, and the file contract.

import sys
from pathlib import Path

# The package that does the work lives in src/ (the scripts find it through scripts/_src.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imbalance_study import imbalance, study  # noqa: E402

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
    keys = ["source", "split", "train_per_class", "test_per_class", "seed", "root", "copy_from"]
    keys += {"torchvision_cifar10": ["preprocessing"], "csv": ["path", "label_column"],
             "image_folder": ["train_root", "test_root", "n_classes", "image_size"]}.get(spec["source"], [])
    if spec.get("validation_per_class"):
        keys.append("validation_per_class")
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


FIGURES = ("fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "table4", "dynamics")


def figure_settings(name):
    return config["figures"].get(name, {})


def figure_runs(name):
    """The runs a figure draws on: only those, so that one figure can be built alone."""
    settings = figure_settings(name)
    methods = settings.get("methods") or config["study"]["methods"]
    datasets = settings.get("datasets") or config["study"]["datasets"]
    runs = [run for run in RUNS if run.dataset in datasets]
    if name in ("fig3", "fig4", "fig6", "table4"):
        return [run for run in runs if run.profile.startswith("step-") and study.split_method(run.method)[0] in methods]
    if name == "fig5":
        kind = settings.get("imbalance", "linear")
        return [run for run in runs if run.profile.startswith(f"{kind}-") and study.split_method(run.method)[0] in methods]
    if name == "fig7":
        rho = settings.get("rho", 1000)
        return [run for run in runs if run.profile.startswith("step-") and imbalance.parse_profile(run.profile).rho == rho
                and not study.phase_one_method(config, run.method)]
    if name in ("fig8", "dynamics"):
        profile = settings.get("profile") or study.fig8_default_profile(config)
        if name == "fig8":
            methods = settings.get("methods") or ["baseline", "over", "under"]
        return [run for run in runs if run.profile == profile and study.split_method(run.method)[0] in methods]
    raise ValueError(f"unknown figure '{name}', expected one of {FIGURES}")


def figure_scores(wildcards):
    files = score_files(figure_runs(wildcards.figure))
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
