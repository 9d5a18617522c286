"""The paper's published numbers (Buda, Maki & Mazurowski 2018), the one place they are written down.

Only what the paper prints as numbers is here: Table 4, the multi-class ROC AUC (in percent, as
printed) of ResNet-10 on ImageNet (ILSVRC-2012) at step imbalance, per method and setting, the
setting (μ, ρ) = (0.9, 100) three times (three runs). The text's reading of the ImageNet results
("the drop in performance for the largest tested imbalance was from 99 to 90") is the baseline row
of that table, so it needs no number of its own. Nothing else is stored (issue 16 names only these);
a further published number belongs here, with the figures that draw it in ``FIGURES``.

- ``experiment(spec)``: which of the paper's experiments a study dataset repeats, from its settings
  (``datasets.<name>`` of the config): ``"imagenet"`` for model ``resnet10`` with ``n_classes`` 1000
  (the paper's ImageNet set-up, configs/paper_imagenet.yaml), None for anything else.
- ``reference(experiment, metric, imbalance, mu, rho, method)``: the paper's values for one cell, one
  per published run, in the score table's unit (a fraction, not percent); an empty list where the
  paper has none.
- ``is_paper_method(method, sampler, sampling_ratio, two_phase)``: whether a study's method is the
  paper's method of that name (baseline: no sampling; over, under: sampled to full balance, one
  phase), so that a method that only shares the name gets no paper numbers; ``paper_methods`` picks
  those of a study's methods.
- ``describe(paper)``: a sentence for a figure's caption naming the numbers drawn and their source.

Pure Python on purpose (no pandas): the figure catalog imports it in every Snakemake process.
"""

from __future__ import annotations

import math

SOURCE = "Buda, Maki & Mazurowski 2018, Table 4"

# The experiments with published numbers: name -> (what it is, the dataset settings that make it).
EXPERIMENTS = {
    "imagenet": {"description": "ImageNet (ILSVRC-2012), ResNet-10, 1000 classes",
                 "settings": {"model": "resnet10", "n_classes": 1000}},
}

# The figures that draw the published numbers: each takes the setting ``paper`` (dataset -> experiment).
FIGURES = ("fig3", "fig4", "table4")

# The paper's methods: name -> (sampler, sampling ratio after sampling; None: no sampling).
METHODS = {"baseline": ("none", None), "over": ("over", 1.0), "under": ("under", 1.0)}

# Table 4: ROC AUC in percent, as printed; (mu, rho) -> method -> one value per run.
TABLE4 = {
    (0.1, 10): {"baseline": (99.41,), "over": (99.35,), "under": (96.85,)},
    (0.8, 50): {"baseline": (96.31,), "over": (95.06,), "under": (94.98,)},
    (0.9, 100): {"baseline": (90.74, 90.46, 90.05), "over": (88.38, 88.39, 88.17),
                 "under": (88.35, 84.08, 83.74)},
}

# (experiment, metric, kind of imbalance) -> (mu, rho) -> method -> values in percent.
PUBLISHED = {("imagenet", "roc_auc", "step"): TABLE4}


def experiment(spec: dict) -> str | None:
    """The paper experiment a study dataset repeats, from its config settings; None when it repeats none.

    A dataset is the paper's experiment when its settings hold every one of the experiment's
    (``EXPERIMENTS[name]["settings"]``): ImageNet is model ``resnet10`` with ``n_classes`` 1000.
    The data themselves are not checked; the name of the dataset does not matter.
    """
    for name, known in EXPERIMENTS.items():
        if all(spec.get(key) == value for key, value in known["settings"].items()):
            return name
    return None


def _same(a, b) -> bool:
    return a is not None and b is not None and not (isinstance(a, float) and math.isnan(a)) \
        and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def reference(experiment: str | None, metric: str, imbalance: str, mu, rho, method: str) -> list[float]:
    """The paper's values for one cell, one per published run, as fractions (percent / 100); [] for none."""
    cells = PUBLISHED.get((experiment, metric, imbalance), {})
    for (paper_mu, paper_rho), methods in cells.items():
        if _same(mu, paper_mu) and _same(rho, paper_rho):
            return [value / 100 for value in methods.get(method, ())]
    return []


def is_paper_method(method: str, sampler: str, sampling_ratio, two_phase: bool) -> bool:
    """Whether a study's method is the paper's of that name: same sampler, to full balance, one phase."""
    if method not in METHODS or two_phase:
        return False
    paper_sampler, paper_ratio = METHODS[method]
    if sampler != paper_sampler:
        return False
    return paper_ratio is None or _same(sampling_ratio, paper_ratio)


def paper_methods(methods) -> set[str]:
    """Of ``methods`` ((name, sampler, sampling ratio, two-phase) per study method), those the paper's."""
    return {name for name, sampler, ratio, two_phase in methods
            if is_paper_method(name, sampler, ratio, bool(two_phase))}


def describe(paper: dict | None, metrics) -> str:
    """A caption's sentence on the paper's numbers drawn for ``paper`` (dataset -> experiment) in a
    figure of ``metrics``; '' when none is drawn (no such experiment, or no number of those metrics)."""
    metrics = {metrics} if isinstance(metrics, str) else set(metrics)
    named = {dataset: name for dataset, name in (paper or {}).items()
             if any(experiment == name and metric in metrics for experiment, metric, _ in PUBLISHED)}
    if not named:
        return ""
    which = "; ".join(f"``{dataset}`` repeats the paper's {EXPERIMENTS[name]['description']}"
                      for dataset, name in named.items())
    return (f"Published numbers ({SOURCE}, ROC AUC of baseline, over- and undersampling at step imbalance) "
            f"are drawn beside the study's, labelled \"paper\": {which}.")
