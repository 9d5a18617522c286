# The study resolved once into plan objects (src/imbalance_study/plan.py), and the lookups the rules
# use: a wildcard is mapped to its object by dictionary lookup, never parsed.

import sys
from pathlib import Path

# The package that does the work lives in src/ (the scripts find it through scripts/_src.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imbalance_study import plan, source_facts  # noqa: E402
from imbalance_study.figures import catalog  # noqa: E402
from imbalance_study.config import validate  # noqa: E402

validate(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
STUDY = plan.resolve(config)
FIGURES = catalog.plan_figures(STUDY)


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    profile=r"[a-z]+-[^/]+",
    bundle=r"bundle\d+",
    n_runs=r"\d+",
    # Any name, so that a figure this study does not draw gets a message listing those it does.
    figure=r"[^/.]+",


def dataset_of(wildcards):
    return STUDY.datasets[wildcards.dataset]


def dataset_sources(wildcards):
    """The user's file a dataset is read from, so that editing it rebuilds the dataset."""
    settings = dataset_of(wildcards).settings
    return [settings["path"]] if settings["source"] == "csv" else []


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
