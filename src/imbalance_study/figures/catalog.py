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
from ..imbalance import NATURAL, number
from ..plan import profile_grids
from ..source_facts import BALANCED_TEST, TABLE_SOURCES, test_kind

# Every figure writes figures/<name>.pdf and figures/<name>.csv (the numbers it draws).
EXTENSIONS = ("pdf", "csv")
METRIC_NAMES = {"roc_auc": "ROC AUC (one-vs-rest, macro)", "accuracy": "accuracy",
                "balanced_accuracy": "balanced accuracy (mean recall)", "macro_f1": "macro-F1",
                "g_mean": "G-mean (geometric mean of per-class recalls)"}


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
    spread: str = ""  # the caption's paragraph on spread and runs drawn, when not the one of lines of mean ± sd


def default_profile(study) -> str | None:
    """The profile fig8 and dynamics show when the config names none: the step profile in the middle
    of the grid (the middle ρ and the middle μ of the study's step profiles, the upper one of an even
    count; else the step profile nearest to them), not an extreme; without step profiles, the natural
    one (the data's own counts). None when the study has neither."""
    steps = [profile for profile in study.profiles() if profile.kind == "step"]
    if not steps:
        return next((profile.name for profile in study.profiles() if profile.kind == "natural"), None)
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


def _checkpoint(study, settings) -> str:
    """The checkpoint a figure takes as a run's result: the one named, else each run's reported one
    (its last; with early stopping, the one it chose)."""
    if settings.get("iteration"):
        return f"iteration {settings['iteration']}"
    stopping = study.config.get("early_stopping") or {}
    if not stopping.get("enabled"):
        return "the last checkpoint of each run"
    metric = METRIC_NAMES.get(stopping.get("metric", "loss"), stopping.get("metric", "loss"))
    if stopping.get("restore_best", True):
        return (f"the checkpoint each run reports (early stopping on the validation {metric}: its best "
                "checkpoint up to its stop, or of the whole run when it never stopped)")
    return (f"the checkpoint each run reports (early stopping on the validation {metric}: the one it stopped at, "
            "or its last when it never stopped)")


def _figure_datasets(study, settings) -> list[str]:
    """The datasets a figure draws: its setting ``datasets``, else the study's."""
    names = settings.get("datasets") or study.config["study"]["datasets"]
    return [names] if isinstance(names, str) else list(names)


def _test_set(study, settings) -> str:
    """The test set a figure's scores are on, as its datasets draw it (``datasets.*.test``)."""
    kinds = {test_kind(study.config["datasets"][name]) for name in _figure_datasets(study, settings)
             if name in study.config["datasets"]}
    if kinds == {BALANCED_TEST}:
        return "the balanced test set"
    if kinds == {"stratified"}:
        return "the stratified test set"
    return "the test set (balanced or stratified, as each dataset below draws it)"


def _examples(spec: dict) -> str:
    """What a dataset's examples are: table rows or images."""
    return "rows" if spec["source"] in TABLE_SOURCES + ("sklearn_breast_cancer", "synthetic_97_3") else "images"


def _examples_of(study, settings) -> str:
    kinds = {_examples(study.config["datasets"][name]) for name in _figure_datasets(study, settings)
             if name in study.config["datasets"]}
    return kinds.pop() if len(kinds) == 1 else "examples"


def _grids(study, kind: str) -> str:
    texts = []
    for _, grid_kind, grid in profile_grids(study.config):
        if grid_kind == kind == NATURAL:
            texts.append("the data's own class counts" + (f" (seeds {', '.join(map(str, grid['seeds']))})"
                                                           if grid.get("seeds") else ""))
        elif grid_kind == kind:
            text = ("μ ∈ {" + ", ".join(map(number, grid["mu"])) + "} × " if kind == "step" else "")
            text += "ρ ∈ {" + ", ".join(map(number, grid["rho"])) + "}"
            texts.append(text + (f" (seeds {', '.join(map(str, grid['seeds']))})" if grid.get("seeds") else ""))
    return "; ".join(texts) or "none"


def _step_profiles(study, settings) -> str:
    return f"- Profiles: step imbalance, {_grids(study, 'step')}."


def _one_profile(name):
    def line(study, settings) -> str:
        profiles = study.profiles()
        if study.config["figures"][name].get("profile"):
            how = f" (named in figures.{name}.profile)"
        elif any(profile.kind == "step" for profile in profiles):
            how = (" (chosen as the middle of the step grid, the middle ρ and μ, since the config names none; "
                   f"set figures.{name}.profile to draw another)")
        elif len(profiles) == 1:
            how = " (the study's only profile: the data's own class counts)"
        else:  # default_profile: without step profiles, the natural one
            how = (" (the data's own class counts, chosen since the study has no step profiles and the config "
                   f"names none; set figures.{name}.profile to draw another)")
        return f"- Profile: ``{settings['profile']}``{how}."
    return line


def _early_stop_mark(study) -> str:
    """The captions' sentence on the early-stop mark of fig8 and dynamics, when early stopping is on."""
    stopping = study.config.get("early_stopping") or {}
    if not stopping.get("enabled"):
        return ""
    metric = METRIC_NAMES.get(stopping.get("metric", "loss"), stopping.get("metric", "loss"))
    return (" A thin dotted vertical line in a panel marks the median iteration at which its runs stopped early "
            f"(early stopping on the validation {metric}, patience {stopping.get('patience', 5)}; over the runs "
            "that stopped); the curves go on past it, since training ran the whole protocol.")


def _train_estimate(study) -> str:
    sample = study.config["scoring"]["train_sample_per_class"]
    return (f" (estimated from at most {sample} distinct examples per majority class; minority classes in full)"
            if sample else "")


def _fig3(study, settings):
    return (f"**Figure 3: {_metric(settings)} against the imbalance ratio ρ, step imbalance.**\n"
            f"x: the imbalance ratio ρ of the training set (log scale); y: {_metric(settings)} on "
            f"{_test_set(study, settings)} at {_checkpoint(study, settings)}, with the network's outputs as they "
            "are (no thresholding). One line per method, one panel per number of minority classes, one row of "
            "panels per dataset. The question it answers: which method should I use, and how fast does each lose "
            "ground as the imbalance grows.")


def _fig4(study, settings):
    return (f"**Figure 4: {_metric(settings)} against the number of minority classes, step imbalance.**\n"
            f"x: the number of minority classes (μ times the number of classes); y: {_metric(settings)} on "
            f"{_test_set(study, settings)} at {_checkpoint(study, settings)}, no thresholding. One line per method, "
            "one panel per imbalance ratio ρ, one row of panels per dataset.")


def _fig5(study, settings):
    kind = settings["imbalance"]
    falling = "in equal steps" if kind == "linear" else "exponentially (a long tail)"
    return (f"**Figure 5: {_metric(settings)} against the imbalance ratio ρ, {kind} imbalance.**\n"
            f"x: the ratio ρ between the largest and the smallest class (log scale), the class sizes falling "
            f"{falling} from the largest to the smallest; y: {_metric(settings)} on {_test_set(study, settings)} at "
            f"{_checkpoint(study, settings)}, no thresholding. One line per method, one panel per dataset.")


def _fig6(study, settings):
    return (f"**Figure 6: {_metric(settings)} against the imbalance ratio ρ, without and with thresholding.**\n"
            f"Figure 3 with {_metric(settings)}: x: the imbalance ratio ρ (log scale); y: {_metric(settings)} on "
            f"{_test_set(study, settings)} at {_checkpoint(study, settings)}. Each method twice: solid, its outputs "
            "as they are; dashed, thresholded (the outputs divided by the class priors of the imbalanced training "
            "set before sampling). One panel per number of minority classes, one row of panels per dataset.")


def _fig7(study, settings):
    rho = number(settings["rho"])
    axes = (f"x: the imbalance ratio left after sampling (log scale, reversed: from ρ = {rho}, nothing sampled, "
            f"on the left to 1, fully balanced, on the right); y: {_metric(settings)} on {_test_set(study, settings)} "
            f"at {_checkpoint(study, settings)}. The sampling runs are the one-phase runs with sampler over or "
            f"under; the runs without sampling at ρ = {rho} are the baseline.")
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
            f"sampling{_train_estimate(study)} (solid), and on {_test_set(study, settings)} (dashed). One panel "
            "per method, a dataset's panels in rows of at most five (one y scale per dataset). A widening gap "
            "between the two is overfitting." + _early_stop_mark(study))


def _dynamics(study, settings):
    return (f"**Learning dynamics: why imbalance hurts, profile {settings['profile']}.**\n"
            "Page 1: x: training iteration (every checkpoint); y: the mean recall of the majority classes "
            "(blue) and of the minority classes (orange), on the training set as the run saw "
            f"it{_train_estimate(study)} (solid) and on {_test_set(study, settings)} (dashed); one panel per "
            "method, in rows of at most five. Minority classes are learnt late (underfit early), then fit on the "
            "training set without generalising (memorised)." + _early_stop_mark(study) + " Page 2: x: training "
            "iteration; y: the generalisation gap (train minus test recall), and the silhouette of the "
            "penultimate-layer features of a fixed subsample of the test set (at most "
            f"{study.config['scoring']['silhouette_per_class']} {_examples_of(study, settings)} per class, all of a "
            "class with fewer; higher: the classes are better separated); one colour per method, majority "
            "classes solid, minority classes dashed.")


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
                f"deviation over the repeats (seeds) with the number of runs in brackets, on "
                f"{_test_set(study, settings)}, without thresholding, at {_checkpoint(study, settings)}; the best "
                "mean of a row is in bold. ")
    else:
        runs = settings["run_columns"]
        text = ("The paper's layout. Rows: the methods, one block per dataset and metric; columns: the imbalance "
                "settings (μ, the fraction of minority classes, and ρ, the imbalance ratio). Values in percent "
                f"with 2 decimals, on {_test_set(study, settings)}, without thresholding, at "
                f"{_checkpoint(study, settings)}. A setting repeated at most {runs} times (seeds) has one column per "
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


def _published(study, settings):
    described = paper.describe_top1_errors(settings.get("paper"))
    return ("**Top-1 error beside the published numbers: does the run reproduce them?**\n"
            "One panel per dataset and profile; x: the methods (\"<method> + post-hoc LA\": its outputs divided by "
            "the class priors, post-hoc logit adjustment with τ = 1, drawn where a source publishes it); y: the "
            f"top-1 error in percent (100 − accuracy) on {_test_set(study, settings)} at "
            f"{_checkpoint(study, settings)}: each seed a small dot, the mean a larger marker with a bar of ± 1 "
            "standard deviation, its value beside it. "
            + (described or "No dataset repeats an experiment with published top-1 errors, so no stars.")
            + " ``published.csv`` holds each point's mean, sd, n and runs (``each_seed``) and the published "
            "errors beside them (``published_<source>``), as fractions.")


def _every_profile(study, settings) -> str:
    kinds = [kind for _, kind, _ in profile_grids(study.config)]
    return "- Profiles: " + "; ".join(f"{kind} imbalance, {_grids(study, kind)}" if kind != NATURAL else
                                      f"natural ({_grids(study, kind)})" for kind in dict.fromkeys(kinds)) + "."


def _repeats_published(run, settings) -> bool:
    """The figure ``published`` draws the datasets that repeat an experiment with published top-1 errors."""
    return paper.TOP1_ERRORS.get((settings.get("paper") or {}).get(run.dataset)) is not None and _chosen(run, settings)


def _compared(run, settings) -> bool:
    """``comparison`` draws the chosen methods and always its reference, on every imbalanced set."""
    return run.dataset in (settings.get("datasets") or [run.dataset]) and \
        run.method.name in [*(settings.get("methods") or [run.method.name]), settings["reference"]]


def _comparison(study, settings):
    metric, reference, confidence = _metric(settings), settings["reference"], settings["confidence"]
    return (f"**Which method should I use? Every method against {reference}, paired by seed, and ranked over "
            f"the grid, on {metric}.**\n"
            "``comparison.html``, this category's page, answers in one sentence per imbalanced set and one for the "
            "grid, each generated from the numbers, with the diagram and the tables below them. ``comparison.pdf``: "
            "page 1, the critical-difference diagram (Demšar, JMLR 2006): each method's mean rank over the "
            f"imbalanced sets where every method has a result (rank 1: the best {metric} on "
            f"{_test_set(study, settings)} at {_checkpoint(study, settings)}, mean over seeds, no thresholding; "
            "lower is better for the loss; ties share their mean rank); a bar joins the methods that the Nemenyi "
            f"test cannot tell apart at α = {1 - confidence:.2g}, after a Friedman test that rejects equal ranks "
            f"(one bar joins them all when it does not). Then, per imbalanced set, each method minus ``{reference}`` "
            "paired by seed (the methods of a seed share their imbalanced set and initial weights): the mean "
            f"difference over seeds (dot) and its {confidence:.0%} bootstrap interval (BCa, line); with 2 or 3 seeds "
            "a bootstrap can only return the range of the seeds' differences, drawn dashed with a hollow dot and "
            "flagged as too few seeds; with one seed, the difference alone. ``comparison.csv`` holds the paired "
            "differences, one row per imbalanced set and method: both means, the method's rank, the interval, the "
            "two-sided Wilcoxon signed-rank p-value, the outcome against the reference (win; tie: the interval "
            "holds zero; loss; undecided: one seed), and the ``mean``, ``sd`` and ``n`` (seeds) of the differences.")


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
    Figure("published", "published:plot_published", _repeats_published, _published, _every_profile,
           spread="Spread: each seed's run is a dot, and the mean over seeds a marker with a bar of ± 1 standard "
           "deviation; the title gives the number of repeats. Only the runs marked ``selected`` in the score table "
           "are drawn. A run that diverged (its loss or weights not finite, or its loss above 10 times that of a "
           "uniform guess at two log or save points in a row) is stopped, never selected and left out; the title "
           "names it."),
    Figure("comparison", "comparison:plot_comparison", _compared, _comparison, _every_profile,
           spread="Runs: only those marked ``selected`` in the score table; a learning-rate search keeps one run "
           "per set and method, so a searched method has one seed there and stays undecided. A run that diverged "
           "(its loss or weights not finite, or its loss above 10 times that of a uniform guess at two log or "
           "save points in a row) is never selected and is left out; the page and the PDF name it."),
)}


def _dataset_text(study, dataset: str) -> str:
    spec = study.config["datasets"][dataset]
    protocol = study.config["protocols"][spec["protocol"]]
    examples = _examples(spec)
    pool = ("training pool at the data's own (natural) class counts" if spec["train_per_class"] == NATURAL
            else f"training pool of up to {spec['train_per_class']} {examples} per class")
    test = (f"stratified test set of {100 * spec['test_fraction']:g}% of the data (the data's own class ratio)"
            if test_kind(spec) == "stratified" else f"balanced test set of {spec['test_per_class']} {examples} per class")
    length = (f"{protocol['epochs']} epochs" if "epochs" in protocol else f"{protocol['iterations']} iterations")
    return (f"``{dataset}`` ({spec['source']}, model {spec['model']}; {pool} and {test}; "
            f"protocol ``{spec['protocol']}``: {length}, batch {protocol['batch_size']}, lr {protocol['lr']})")


def _method_text(study, method: str) -> str:
    spec = study.config["methods"][method]
    two_phase = spec.get("two_phase")
    if two_phase and "tau_normalise" in two_phase:
        return (f"``{method}`` (tau-normalisation of ``{two_phase['from']}``: output weights divided by their "
                f"norm to the power {number(two_phase['tau_normalise'])}, no training)")
    loss = spec["loss"]
    loss_text = "" if (loss["name"], loss["weights"]) == ("cross_entropy", "none") else (
        f", loss {loss['name']}" + (f" with {loss['weights']} class weights" if loss["weights"] != "none" else "")
        + (f" from {100 * loss['weights_from']:g}% of training" if loss["weights"] != "none" and loss["weights_from"] else ""))
    if two_phase:
        layers = two_phase.get("layers")
        layers = f"layers {', '.join(layers)}" if layers else "the output layers"
        how = ("re-initialises, then re-trains" if two_phase["reinitialise"] else "fine-tunes")
        batches = " on class-balanced batches" if two_phase["sampler"] == "class_balanced" else ""
        return (f"``{method}`` (two-phase: {how} {layers} of ``{two_phase['from']}`` on the "
                f"imbalanced set{batches}{loss_text})")
    ratio = f" to ratio {number(spec['ratio'])}" if spec["ratio"] != 1 else ""
    return f"``{method}`` (sampler {spec['sampler']}{ratio}{loss_text})"


def caption(study, figure: Figure, settings: dict, runs) -> str:
    """The figure's report caption (reStructuredText) for this study: what it shows, for which config."""
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    methods = list(dict.fromkeys(run.method.name for run in runs))
    own_seeds = any(grid.get("seeds") for _, _, grid in profile_grids(study.config))
    given = study.config["figures"][figure.name]
    lines = [figure.describe(study, settings), "",
             figure.spread or
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
            # The paper experiment each drawn dataset repeats, for the figure to draw the published numbers;
            # ``published`` draws only such datasets, so it looks among every chosen run's.
            looked_at = [run for run in study.runs if _chosen(run, settings)] if name == "published" else runs
            experiments = {dataset: paper.experiment(study.config["datasets"][dataset])
                           for dataset in dict.fromkeys(run.dataset for run in looked_at)}
            experiments = {dataset: experiment for dataset, experiment in experiments.items() if experiment}
            if experiments:
                settings["paper"] = experiments
                runs = tuple(run for run in study.runs if figure.draws(run, settings))
        text = caption(study, figure, settings, runs) if runs else ""
        described = paper.describe(settings.get("paper"), settings.get("metric", ()))
        if text and name != "table4" and described:
            text += "\n" + described + "\n"
        plans[name] = FigurePlan(name, settings, runs, text)
    return plans
