# The study resolved once into plan objects (src/imbalance_study/plan.py), and the lookups the rules
# use: a wildcard is mapped to its object by dictionary lookup, never parsed.

import sys
from pathlib import Path

# The package that does the work lives in src/ (the scripts find it through scripts/_src.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imbalance_study import plan, source_facts, your_data  # noqa: E402
from imbalance_study.figures import catalog  # noqa: E402
from imbalance_study.config import validate  # noqa: E402

# --config data=path/to/table.csv label=y: the study of configs/your_data.yaml on that table.
your_data.expand_short_form(config, workflow.basedir)
validate(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
STUDY = plan.resolve(config)
FIGURES = catalog.plan_figures(STUDY)
# Early stopping as the aggregation and the figures read it: when off, its other settings change nothing.
EARLY_STOPPING = config["early_stopping"] if config["early_stopping"]["enabled"] else {"enabled": False}


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    profile=r"[a-z]+(-[^/]+)?",  # step-mu0.5-rho10, linear-rho10, natural
    bundle=r"bundle\d+",
    n_runs=r"\d+",
    # Any name, so that a figure this study does not draw gets a message listing those it does.
    figure=r"[^/.]+",


def dataset_of(wildcards):
    return STUDY.datasets[wildcards.dataset]


def dataset_sources(wildcards):
    """The user's file a dataset is read from, so that editing it rebuilds the dataset."""
    settings = dataset_of(wildcards).settings
    return [settings["path"]] if settings["source"] in source_facts.TABLE_SOURCES else []


def cell_of(wildcards):
    return STUDY.cell(wildcards.dataset, wildcards.profile)


def bundle_of(wildcards):
    return STUDY.bundle(wildcards.dataset, wildcards.profile, wildcards.bundle, int(wildcards.n_runs))


def phase_one_bundles(wildcards):
    """The bundles holding the first phases of a bundle's two-phase runs (none for one-phase runs)."""
    return [bundle.path(plan.BUNDLE_RUNS) for bundle in STUDY.phase_one_bundles(bundle_of(wildcards))]


def figure_of(wildcards):
    if wildcards.figure not in FIGURES:
        raise ValueError(f"figures/{wildcards.figure}: not a figure this study draws (it draws "
                         f"{', '.join(FIGURES) or 'none'}); the figures there are {', '.join(catalog.FIGURES)}, "
                         f"each drawn when named under figures: in the config")
    return FIGURES[wildcards.figure]


def figure_scores(wildcards):
    """The score tables of the bundles that hold the figure's runs: only those, so that one figure
    can be built alone."""
    figure = figure_of(wildcards)
    if not figure.runs:
        raise ValueError(f"figures/{figure.name}: no runs of this study feed it "
                         f"(see config key figures.{figure.name} and study.profiles)")
    return [bundle.path(plan.BUNDLE_SCORES) for bundle in STUDY.bundles_holding(figure.runs)]


def drawn_figures():
    """What `snakemake` draws: every configured figure that has runs to draw from."""
    targets = []
    for name, figure in FIGURES.items():
        if not figure.runs:
            logger.warning(f"figures.{name}: no runs of this study feed it; not drawn")
        else:
            targets += [plan.FIGURE.format(figure=name, extension=extension) for extension in catalog.EXTENSIONS]
    return targets


def comparison_page():
    """The comparison's page, for rule all, when the study draws the comparison (drawn_figures)."""
    drawn = "comparison" in FIGURES and FIGURES["comparison"].runs
    return [plan.FIGURE.format(figure="comparison", extension="html")] if drawn else []


def visible_gpus():
    """How many NVIDIA GPUs this machine, where Snakemake plans the jobs, shows to CUDA, without
    importing PyTorch (seconds per Snakemake call): the GPUs `nvidia-smi -L` lists (it comes with
    the driver), cut to the devices CUDA_VISIBLE_DEVICES names where it is set ("" and "-1" hide
    them all). 0 without nvidia-smi, or where it fails."""
    import os
    import shutil
    import subprocess

    count = 0
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi:
        try:
            listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            listing = None
        if listing is not None and listing.returncode == 0:
            count = sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        listed = 0
        for entry in visible.split(","):  # CUDA reads the list up to its first invalid entry
            if not entry.strip() or entry.strip().startswith("-"):
                break
            listed += 1
        count = min(count, listed)
    return count


def training_gpus():
    """Resource `gpu` of a training job: 1 where it trains on CUDA (device cuda or cuda:N, or auto
    with a GPU visible here), else 0. The local profile (profiles/default) offers gpu=1, so jobs on
    the GPU queue for it while CPU-only training is not limited; profiles/slurm sets gpu=1 itself."""
    device = config["device"]
    if device == "auto":
        return 1 if visible_gpus() > 0 else 0
    return 1 if device.startswith("cuda") else 0
