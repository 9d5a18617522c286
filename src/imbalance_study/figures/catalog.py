"""The figures a study can draw: one entry per figure, the home of everything about it but its drawing.

An entry (``Figure``) says which runs the figure draws, which profile it shows when it shows one,
what its caption says for a given config, and where its plot function lives (``module:function`` in
this package, imported only by the job that draws it: plotting libraries are slow to import, and this
module is imported by every Snakemake process; ``registry.FIGURES`` looks the functions up). Its settings and their defaults are the schema's
(``figures.<name>`` in ``workflow/schemas/config.schema.yaml``); ``plan_figures`` resolves them into a
``FigurePlan`` per configured figure, which the workflow's figure rule reads: its wildcard constraint,
inputs, params and report caption all come from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from .. import paper
from ..imbalance import number
from ..plan import profile_grids

# Every figure writes figures/<name>.pdf and figures/<name>.csv (the numbers it draws).
EXTENSIONS = ("pdf", "csv")
METRIC_NAMES = {"roc_auc": "ROC AUC (one-vs-rest, macro)", "accuracy": "accuracy"}


@dataclass(frozen=True)
class FigurePlan:
    """A configured figure: its settings (schema defaults and chosen profile filled in), its runs, its caption."""

    name: str
    settings: dict = field(hash=False)
    runs: tuple = ()
    caption: str = ""

    @property
    def run_keys(self) -> list[list]:
        return [list(run.key) for run in self.runs]


@dataclass(frozen=True)
class Figure:
    name: str
    plot: str  # "module:function" under imbalance_study.figures
    draws: Callable  # (run, settings) -> whether the figure draws the run
    describe: Callable  # (study, settings) -> the caption's opening paragraph
    profiles: Callable  # (study, settings) -> the caption's profiles line
    one_profile: bool = False  # draws one profile: settings.profile, else default_profile(study)
    splits: tuple[str, ...] = ("test",)  # the scored splits it draws


def default_profile(study) -> str | None:
    """The profile fig8 and dynamics show when the config names none: the step profile in the middle
    of the grid (the middle ρ and the middle μ of the study's step profiles, the upper one of an even
    count; else the step profile nearest to them), not an extreme. None when the study has no step profile."""
    steps = [profile for profile in study.profiles() if profile.kind == "step"]
    if not steps:
        return None
    rhos, mus = sorted({profile.rho for profile in steps}), sorted({profile.mu for profile in steps})

    def distance(profile):
        return (abs(rhos.index(profile.rho) - len(rhos) // 2) + abs(mus.index(profile.mu) - len(mus) // 2),
                -profile.rho, profile.mu)
    return min(steps, key=distance).name


def _chosen(run, settings) -> bool:
    return run.method.name in (settings.get("methods") or [run.method.name]) and \
        run.dataset in (settings.get("datasets") or [run.dataset])


def _step(run, settings) -> bool:
    return run.profile.kind == "step" and _chosen(run, settings)


def _metric(settings) -> str:
    return METRIC_NAMES.get(settings["metric"], settings["metric"])


def _checkpoint(settings) -> str:
    return f"iteration {settings['iteration']}" if settings.get("iteration") else "the last checkpoint of each run"


def _grids(study, kind: str) -> str:
    texts = []
    for _, grid_kind, grid in profile_grids(study.config):
        if grid_kind == kind:
            text = ("μ ∈ {" + ", ".join(map(number, grid["mu"])) + "} × " if kind == "step" else "")
            text += "ρ ∈ {" + ", ".join(map(number, grid["rho"])) + "}"
            texts.append(text + (f" (seeds {', '.join(map(str, grid['seeds']))})" if grid.get("seeds") else ""))
    return "; ".join(texts) or "none"


def _step_profiles(study, settings) -> str:
    return f"- Profiles: step imbalance, {_grids(study, 'step')}."


def _one_profile(name):
    def line(study, settings) -> str:
        how = (f" (named in figures.{name}.profile)" if study.config["figures"][name].get("profile")
               else " (chosen as the middle of the step grid, the middle ρ and μ, since the config names none; "
                     f"set figures.{name}.profile to draw another)")
        return f"- Profile: ``{settings['profile']}``{how}."
    return line


def _train_estimate(study) -> str:
    sample = study.config["scoring"]["train_sample_per_class"]
    return (f" (estimated from at most {sample} distinct examples per majority class; minority classes in full)"
            if sample else "")


def _fig3(study, settings):
    return (f"**Figure 3: {_metric(settings)} against the imbalance ratio ρ, step imbalance.**\n"
            f"x: the imbalance ratio ρ of the training set (log scale); y: {_metric(settings)} on the balanced "
            f"test set at {_checkpoint(settings)}, with the network's outputs as they are (no thresholding). One "
            "line per method, one panel per number of minority classes, one row of panels per dataset. The "
            "question it answers: which method should I use, and how fast does each lose ground as the "
            "imbalance grows.")


def _fig4(study, settings):
    return (f"**Figure 4: {_metric(settings)} against the number of minority classes, step imbalance.**\n"
            f"x: the number of minority classes (μ times the number of classes); y: {_metric(settings)} on the "
            f"balanced test set at {_checkpoint(settings)}, no thresholding. One line per method, one panel per "
            "imbalance ratio ρ, one row of panels per dataset.")


def _fig5(study, settings):
    kind = settings["imbalance"]
    falling = "in equal steps" if kind == "linear" else "exponentially (a long tail)"
    return (f"**Figure 5: {_metric(settings)} against the imbalance ratio ρ, {kind} imbalance.**\n"
            f"x: the ratio ρ between the largest and the smallest class (log scale), the class sizes falling "
            f"{falling} from the largest to the smallest; y: {_metric(settings)} on the balanced test set at "
            f"{_checkpoint(settings)}, no thresholding. One line per method, one panel per dataset.")


def _fig6(study, settings):
    return (f"**Figure 6: {_metric(settings)} against the imbalance ratio ρ, without and with thresholding.**\n"
            f"Figure 3 with {_metric(settings)}: x: the imbalance ratio ρ (log scale); y: {_metric(settings)} on "
            f"the balanced test set at {_checkpoint(settings)}. Each method twice: solid, its outputs as they "
            "are; dashed, thresholded (the outputs divided by the class priors of the imbalanced training set "
            "before sampling). One panel per number of minority classes, one row of panels per dataset.")


def _fig7(study, settings):
    rho = number(settings["rho"])
    axes = (f"x: the imbalance ratio left after sampling (log scale, reversed: from ρ = {rho}, nothing sampled, "
            f"on the left to 1, fully balanced, on the right); y: {_metric(settings)} on the balanced test set at "
            f"{_checkpoint(settings)}. The sampling runs are the one-phase runs with sampler over or under; the "
            f"runs without sampling at ρ = {rho} are the baseline.")
    if settings["layout"] == "paper":
        layout = (" As in the paper, two panels side by side, (a) oversampling and (b) undersampling, one row "
                  "of panels per dataset; in each, one line per number of minority classes (a colour each), "
                  "starting from its baseline (the first point, x = ρ), whose value is also a dotted horizontal "
                  "line of the line's colour.")
    else:
        layout = (" One panel per number of minority classes, one row of panels per dataset; in each, one line "
                  "for oversampling and one for undersampling, both starting from the baseline (their common "
                  "first point), which is also a dotted horizontal line with a band of ± 1 sd.")
    return f"**Figure 7: partial over- and undersampling at step imbalance ρ = {rho}.**\n" + axes + layout


def _fig8(study, settings):
    return (f"**Figure 8: train and test {_metric(settings)} over training, profile {settings['profile']}.**\n"
            f"x: training iteration (every checkpoint; log scale when they span more than a factor of 50); y: "
            f"{_metric(settings)} on the training set as the run saw it, after its "
            f"sampling{_train_estimate(study)} (solid), and on the balanced test set (dashed). One panel per "
            "method, one row of panels per dataset. A widening gap between the two is overfitting.")


def _dynamics(study, settings):
    return (f"**Learning dynamics: why imbalance hurts, profile {settings['profile']}.**\n"
            "Page 1: x: training iteration (every checkpoint); y: the mean recall of the majority classes "
            "(blue) and of the minority classes (orange), on the training set as the run saw "
            f"it{_train_estimate(study)} (solid) and on the balanced test set (dashed); one panel per method. "
            "Minority classes are learnt late (underfit early), then fit on the training set without "
            "generalising (memorised). Page 2: x: training iteration; y: the generalisation gap (train minus "
            "test recall), and the silhouette of the penultimate-layer features of a fixed test subsample "
            f"({study.config['scoring']['silhouette_per_class']} images per class; higher: the classes are "
            "better separated); one colour per method, majority classes solid, minority classes dashed.")


def _table4(study, settings):
    metric = settings.get("metric")
    metrics = list(dict.fromkeys([metric, "roc_auc", "accuracy"])) if isinstance(metric, str) else \
        list(metric or ["roc_auc", "accuracy"])
    csv = ("``table4.csv`` holds the mean, sd and number of runs of each cell as ``<method>_mean``, "
           "``<method>_sd`` and ``<method>_n`` per (dataset, metric, setting), and ``select_on``, the split a "
           "learning-rate search chose the runs on (empty when none was searched)")
    described = paper.describe(settings.get("paper"), metrics)
    if settings["layout"] == "settings_rows":
        text = ("Rows: the imbalance settings (μ, the fraction of minority classes, and ρ, the imbalance ratio), "
                "one block per dataset and metric; columns: the methods. Each cell is the mean ± 1 standard "
                "deviation over the repeats (seeds) with the number of runs in brackets, on the balanced test "
                f"set, without thresholding, at {_checkpoint(settings)}; the best mean of a row is in bold. ")
    else:
        runs = settings["run_columns"]
        text = ("The paper's layout. Rows: the methods, one block per dataset and metric; columns: the imbalance "
                "settings (μ, the fraction of minority classes, and ρ, the imbalance ratio). Values in percent "
                "with 2 decimals, on the balanced test set, without thresholding, at "
                f"{_checkpoint(settings)}. A setting repeated at most {runs} times (seeds) has one column per "
                "run, its seed in the header (run k of the paper beside run k of the study); one repeated more "
                "often has one column of mean ± 1 standard deviation (number of runs). The best study value of "
                "a column is in bold. ")
        text += ("Each method the paper publishes is followed by a grey italic row \"<method> (paper)\" holding "
                 f"its published numbers in the same columns. {described} " if described else
                 "No dataset repeats an experiment of the paper with published numbers, so no paper rows. ")
    csv += (", and ``paper_<method>_mean``, ``paper_<method>_sd`` and ``paper_<method>_n`` over the paper's "
            "published runs." if described else ".")
    return (f"**Table 4: every method at every step-imbalance setting, "
            f"{' then '.join(METRIC_NAMES.get(m, m) for m in metrics)}.**\n" + text + csv)


FIGURES = {figure.name: figure for figure in (
    Figure("fig3", "lines:plot_fig3", _step, _fig3, _step_profiles),
    Figure("fig4", "lines:plot_fig4", _step, _fig4, _step_profiles),
    Figure("fig5", "lines:plot_fig5", lambda run, s: run.profile.kind == s["imbalance"] and _chosen(run, s), _fig5,
           lambda study, s: f"- Profiles: {s['imbalance']} imbalance, {_grids(study, s['imbalance'])}."),
    Figure("fig6", "lines:plot_fig6", _step, _fig6, _step_profiles),
    Figure("fig7", "fig7:plot_fig7", lambda run, s: _step(run, s) and run.profile.rho == s["rho"]
           and not run.method.two_phase, _fig7,
           lambda study, s: f"- Profiles: step imbalance at ρ = {number(s['rho'])}, from {_grids(study, 'step')}."),
    Figure("fig8", "fig8:plot_fig8", lambda run, s: run.profile.name == s["profile"] and _chosen(run, s), _fig8,
           _one_profile("fig8"), one_profile=True, splits=("train", "test")),
    Figure("dynamics", "dynamics:plot_dynamics", lambda run, s: run.profile.name == s["profile"] and _chosen(run, s),
           _dynamics, _one_profile("dynamics"), one_profile=True, splits=("train", "test")),
    Figure("table4", "table4:plot_table4", _step, _table4, _step_profiles),
)}


def _dataset_text(study, dataset: str) -> str:
    spec = study.config["datasets"][dataset]
    protocol = study.config["protocols"][spec["protocol"]]
    return (f"``{dataset}`` ({spec['source']}, model {spec['model']}; training pool of up to "
            f"{spec['train_per_class']} and balanced test set of {spec['test_per_class']} images per class; "
            f"protocol ``{spec['protocol']}``: {protocol['iterations']} iterations, batch {protocol['batch_size']}, "
            f"lr {protocol['lr']})")


def _method_text(study, method: str) -> str:
    spec = study.config["methods"][method]
    if spec.get("two_phase"):
        layers = spec["two_phase"].get("layers")
        layers = f"layers {', '.join(layers)}" if layers else "the output layers"
        return (f"``{method}`` (two-phase: fine-tunes {layers} of ``{spec['two_phase']['from']}`` on the "
                "imbalanced set)")
    ratio = f" to ratio {number(spec['ratio'])}" if spec["ratio"] != 1 else ""
    return f"``{method}`` (sampler {spec['sampler']}{ratio})"


def caption(study, figure: Figure, settings: dict, runs) -> str:
    """The figure's report caption (reStructuredText) for this study: what it shows, for which config."""
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    methods = list(dict.fromkeys(run.method.name for run in runs))
    own_seeds = any(grid.get("seeds") for _, _, grid in profile_grids(study.config))
    given = study.config["figures"][figure.name]
    lines = [figure.describe(study, settings), "",
             "Spread: each point or line is the mean over the repeats (seeds) of a setting, the band ± 1 "
             "standard deviation; the figure's title gives the number of repeats. Only the runs marked "
             "``selected`` in the score table are drawn (when a protocol searches learning rates, the title "
             "names the split the run was chosen on). A run that diverged (its loss or weights not finite, "
             "or its loss above 10 times that of a uniform guess at two log or save points in a row) is "
             "stopped, never selected and left out; the title names it.", "", "**For which config.**", ""]
    lines += [f"- Dataset {_dataset_text(study, dataset)}." for dataset in datasets]
    lines += [figure.profiles(study, settings),
              f"- Methods: {', '.join(_method_text(study, method) for method in methods)}.",
              f"- Seeds (repeats): {', '.join(map(str, study.config['study']['seeds']))}"
              f"{' (where a grid names none of its own)' if own_seeds else ''}; "
              + ("every repeat trains on the same imbalanced set, drawn with the first seed (repeats: same_data)."
                 if study.config["study"]["repeats"] == "same_data" else
                 "each repeat draws its own imbalanced set (repeats: new_data)."),
              f"- Settings ``figures.{figure.name}``: "
              + (f"``{json.dumps(given, ensure_ascii=False, sort_keys=True)}``." if given else "none."), "",
              f"``{figure.name}.csv`` holds the numbers the figure draws. Drawn from the score files of only "
              "these runs; ``results/scores.csv`` (category Scores) holds every score and "
              "``results/scores.provenance.json`` (category Config) the whole config. The PDF's metadata names "
              "the figure's settings and the software versions."]
    return "\n".join(lines) + "\n"


def plan_figures(study) -> dict[str, FigurePlan]:
    """Every figure under ``figures:`` in the config, resolved: settings, the chosen profile, runs, caption.

    A figure that draws the paper's published numbers (``paper.FIGURES``) gets the setting ``paper``
    (dataset -> the paper experiment it repeats, ``paper.experiment`` of its settings) when one of its
    datasets repeats one and the config names no ``paper`` of its own.
    """
    plans = {}
    for name, given in study.config["figures"].items():
        figure = FIGURES[name]
        settings = dict(given)
        if figure.one_profile and settings.get("profile") is None:
            settings["profile"] = default_profile(study)
        runs = tuple(run for run in study.runs if figure.draws(run, settings))
        if name in paper.FIGURES and settings.get("paper") is None:
            # The paper experiment each drawn dataset repeats, for the figure to draw the published numbers.
            experiments = {dataset: paper.experiment(study.config["datasets"][dataset])
                           for dataset in dict.fromkeys(run.dataset for run in runs)}
            experiments = {dataset: experiment for dataset, experiment in experiments.items() if experiment}
            if experiments:
                settings["paper"] = experiments
        text = caption(study, figure, settings, runs) if runs else ""
        described = paper.describe(settings.get("paper"), settings.get("metric", ()))
        if text and name != "table4" and described:
            text += "\n" + described + "\n"
        plans[name] = FigurePlan(name, settings, runs, text)
    return plans
