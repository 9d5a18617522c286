"""Published numbers, the one place they are written down: the paper's (Buda, Maki & Mazurowski
2018) and those of the long-tailed recognition anchors (Cao et al. 2019; Menon et al. 2021).

Only what the sources print as numbers is here.

- The paper's Table 4: the multi-class ROC AUC (in percent, as printed) of ResNet-10 on ImageNet
  (ILSVRC-2012) at step imbalance, per method and setting, the setting (μ, ρ) = (0.9, 100) three
  times (three runs). The text's reading of the ImageNet results ("the drop in performance for the
  largest tested imbalance was from 99 to 90") is the baseline row of that table, so it needs no
  number of its own. Figures 3 and 4 and Table 4 draw them (``FIGURES``).
- CIFAR-10-LT with ResNet-32 (``CIFAR10_LT``): the top-1 error (percent, as printed) on the balanced
  CIFAR-10 test set of Cao et al. 2019 (Table 2: ERM and LDAM-DRW at exponential and step
  imbalance, ρ 100 and 10) and Menon et al. 2021 (Table 3: ERM and post-hoc logit adjustment at
  exponential ρ 100), each mapped to the method of configs/cifar10_lt.yaml that repeats it and to
  how its outputs are scored (``Published``). The figure ``published`` draws them.

- ``experiment(spec)``: which published experiment a study dataset repeats, from its settings
  (``datasets.<name>`` of the config): ``"imagenet"`` for model ``resnet10`` with ``n_classes`` 1000
  (configs/paper_imagenet.yaml), ``"cifar10_lt"`` for CIFAR-10 with model ``resnet32`` and the full
  5,000 / 1,000 images per class (configs/cifar10_lt.yaml), None for anything else.
- ``reference(experiment, metric, imbalance, mu, rho, method)``: the paper's values for one cell, one
  per published run, in the score table's unit (a fraction, not percent); an empty list where the
  paper has none.
- ``top1_errors(experiment, imbalance, mu, rho)``: the published top-1 errors of one imbalanced set
  (``Published``, values as fractions); an empty list where none is published.
- ``is_paper_method(method, sampler, sampling_ratio, two_phase)``: whether a study's method is the
  paper's method of that name (baseline: no sampling; over, under: sampled to full balance, one
  phase), so that a method that only shares the name gets no paper numbers; ``paper_methods`` picks
  those of a study's methods.
- ``describe(paper)``: a sentence for a figure's caption naming the numbers drawn and their source.

Pure Python on purpose (no pandas): the figure catalog imports it in every Snakemake process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

SOURCE = "Buda, Maki & Mazurowski 2018, Table 4"
# Every source of published numbers: key -> how a figure names it.
SOURCES = {"buda2018": SOURCE, "cao2019": "Cao et al. 2019, Table 2", "menon2021": "Menon et al. 2021, Table 3"}

# The experiments with published numbers: name -> (what it is, the dataset settings that make it).
EXPERIMENTS = {
    "imagenet": {"description": "ImageNet (ILSVRC-2012), ResNet-10, 1000 classes",
                 "settings": {"model": "resnet10", "n_classes": 1000}},
    "cifar10_lt": {"description": "CIFAR-10-LT, ResNet-32, 5,000 training and 1,000 test images per class",
                   "settings": {"source": "torchvision_cifar10", "model": "resnet32", "train_per_class": 5000,
                                "test_per_class": 1000}},
}

# The figures that draw published numbers: each takes the setting ``paper`` (dataset -> experiment).
FIGURES = ("fig3", "fig4", "table4", "published")

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


@dataclass(frozen=True)
class Published:
    """One published top-1 error: its ``source`` (a key of ``SOURCES``), the method as the source
    names it (``label``), the study's method that repeats it (``method``, as configs/cifar10_lt.yaml
    names it) and how that method's outputs are scored (``scoring``: ``plain``, as they are, or
    ``posthoc``, post-hoc logit adjustment with tau 1, which is the score table's ``thresholded``:
    the outputs divided by the class priors), and ``value``: percent as printed, or a fraction from
    ``top1_errors``."""

    source: str
    label: str
    method: str
    scoring: str
    value: float


SCORINGS = ("plain", "posthoc")

# CIFAR-10-LT with ResNet-32, top-1 error in percent on the balanced test set, as printed:
# (kind of imbalance, mu, rho) -> the numbers published for that set.
CIFAR10_LT = {
    ("exponential", None, 100): (Published("cao2019", "ERM", "baseline", "plain", 29.64),
                                 Published("cao2019", "LDAM-DRW", "ldam_drw", "plain", 22.97),
                                 Published("menon2021", "ERM", "baseline", "plain", 27.16),
                                 Published("menon2021", "post-hoc logit adjustment", "baseline", "posthoc", 22.60)),
    ("exponential", None, 10): (Published("cao2019", "ERM", "baseline", "plain", 13.61),
                                Published("cao2019", "LDAM-DRW", "ldam_drw", "plain", 11.84)),
    ("step", 0.5, 100): (Published("cao2019", "ERM", "baseline", "plain", 36.70),
                         Published("cao2019", "LDAM-DRW", "ldam_drw", "plain", 23.08)),
    ("step", 0.5, 10): (Published("cao2019", "ERM", "baseline", "plain", 17.50),
                        Published("cao2019", "LDAM-DRW", "ldam_drw", "plain", 12.19)),
}
# experiment -> its published top-1 errors.
TOP1_ERRORS = {"cifar10_lt": CIFAR10_LT}


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


def _absent(value) -> bool:
    """No value: None, or the NaN that the score table holds for the μ of a linear or exponential profile."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def top1_errors(experiment: str | None, imbalance: str, mu, rho) -> list[Published]:
    """The published top-1 errors of one imbalanced set, values as fractions (percent / 100); [] for none.

    ``mu`` is None or NaN for a profile that has none (linear, exponential).
    """
    for (kind, published_mu, published_rho), numbers in TOP1_ERRORS.get(experiment, {}).items():
        same_mu = _absent(mu) if published_mu is None else _same(mu, published_mu)
        if kind == imbalance and same_mu and _same(rho, published_rho):
            return [replace(number, value=number.value / 100) for number in numbers]
    return []


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


def describe_top1_errors(paper: dict | None) -> str:
    """A caption's sentence on the published top-1 errors drawn for ``paper`` (dataset -> experiment);
    '' when none is drawn."""
    named = {dataset: name for dataset, name in (paper or {}).items() if TOP1_ERRORS.get(name)}
    if not named:
        return ""
    which = "; ".join(f"``{dataset}`` repeats {EXPERIMENTS[name]['description']}" for dataset, name in named.items())
    numbers = {number for name in named.values() for numbers in TOP1_ERRORS[name].values() for number in numbers}
    drawn = "; ".join(
        f"{SOURCES[source]}: " + ", ".join(sorted({f"{n.label} as ``{n.method}``"
                                                   + (" post-hoc adjusted (thresholded)" if n.scoring == "posthoc"
                                                      else "") for n in numbers if n.source == source}))
        for source in SOURCES if any(n.source == source for n in numbers))
    return f"Published top-1 errors are drawn beside the study's as hollow stars labelled with their source ({drawn}): {which}."


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
