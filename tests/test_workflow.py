"""The workflow end to end on a tiny digits study, and what a dry run says after a change."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.workflow

TINY = {
    "datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "test_per_class": 20,
                            "model": "digits_cnn", "protocol": "digits"}},
    "protocols": {"digits": {"iterations": 80, "batch_size": 16, "lr": 0.02, "checkpoints": [20, 80],
                             "lr_policy": {"name": "inv", "gamma": 1e-4, "power": 0.75}}},
    "methods": {"baseline": {"sampler": "none"}, "over": {"sampler": "over"}, "under": {"sampler": "under"},
                "twophase_over": {"two_phase": {"from": "over"}}},
    "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline", "over", "under", "twophase_over"],
              "profiles": {"step": {"mu": [0.5], "rho": [2, 10]}, "linear": {"rho": [10]}}},
    "figures": {"fig3": {"methods": ["baseline", "over"]}, "fig5": {}, "fig8": {}},
}


def snakemake(workdir: Path, *arguments: str, config: dict | None = None, configfiles: list | None = None) -> str:
    """Run the workflow in ``workdir`` on ``config`` (written to study.yaml there) or on ``configfiles``."""
    if config is not None:
        (workdir / "study.yaml").write_text(yaml.safe_dump(config))
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--configfile",
               *map(str, configfiles or [workdir / "study.yaml"]), "--cores", "2", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}; empty when nothing is to be done."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("Reasons:")[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE))
    counts.pop("total")
    return {rule: int(count) for rule, count in counts.items()}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    snakemake(workdir, config=TINY)
    return workdir


def test_the_study_produces_scores_and_figures(finished_study):
    provenance = json.loads((finished_study / "results" / "scores.provenance.json").read_text())
    assert provenance["config"]["study"]["methods"] == TINY["study"]["methods"]
    assert provenance["software"]["torch"] and len(provenance["config_sha256"]) == 64
    for figure in ("fig3", "fig5", "fig8"):
        pdf = (finished_study / "figures" / f"{figure}.pdf").read_bytes()
        # Each figure names its settings and the software that drew it in its metadata.
        assert pdf.startswith(b"%PDF") and f'settings {{"{figure}": '.encode() in pdf
        assert f"matplotlib {provenance['software']['matplotlib']}".encode() in pdf
    table = pd.read_csv(finished_study / "results" / "scores.csv")
    assert set(table["method"]) == {"baseline", "over", "under", "twophase_over"}
    assert set(table["profile"]) == {"step-mu0.5-rho2", "step-mu0.5-rho10", "linear-rho10"}
    assert set(table["iteration"]) == {20, 80}
    assert set(table["metric"]) == {"roc_auc", "accuracy", "recall", "loss", "silhouette", "balanced_accuracy",
                                    "macro_f1", "g_mean"}
    assert set(table["tau"]) == {0.0, 1.0, 0.5, 1.5, 2.0}  # plain, thresholded, post-hoc logit adjustment
    assert set(table["split"]) == {"train", "test"}
    assert table["selected"].all()
    final = table[(table["iteration"] == 80) & (table["metric"] == "roc_auc") & ~table["thresholded"]
                  & (table["split"] == "test")]
    assert len(final) == 12 and final["value"].between(0.5, 1.0).all()
    indices = sorted(p.name for p in (finished_study / "results/indices/digits/step-mu0.5-rho10/seed1").iterdir())
    assert indices == ["imbalanced.npy", "over.npy", "under.npy"]


def test_each_figure_writes_the_numbers_it_draws_from_the_score_table(finished_study):
    """fig3.csv holds, per (minority classes, rho, method), the mean, sd and count over seeds of the
    final test ROC AUC in results/scores.csv; fig8.csv every checkpoint's accuracy on both splits."""
    table = pd.read_csv(finished_study / "results" / "scores.csv")
    overall = table[(table["group"] == "all") & ~table["thresholded"] & table["selected"]]
    final = overall[(overall["iteration"] == 80) & (overall["split"] == "test") & (overall["metric"] == "roc_auc")
                    & (overall["imbalance"] == "step") & overall["method"].isin(["baseline", "over"])]
    expected = final.groupby(["n_minority", "rho", "method"])["value"].agg(["mean", "std", "count"]).reset_index()
    drawn = pd.read_csv(finished_study / "figures" / "fig3.csv").merge(expected, on=["n_minority", "rho", "method"],
                                                                      validate="one_to_one")
    assert len(drawn) == len(expected) == 4 and set(drawn["method"]) == {"baseline", "over"}
    assert (drawn["mean_x"] - drawn["mean_y"]).abs().max() < 1e-12 and (drawn["n"] == drawn["count"]).all()
    curves = pd.read_csv(finished_study / "figures" / "fig8.csv")
    assert set(curves["split"]) == {"train", "test"} and set(curves["iteration"]) == {20, 80}
    profile = curves["profile"].iloc[0]
    rows = overall[(overall["profile"] == profile) & (overall["metric"] == "accuracy")]
    expected = rows.groupby(["method", "split", "iteration"])["value"].mean()
    for _, row in curves.iterrows():
        assert abs(row["mean"] - expected[(row["method"], row["split"], row["iteration"])]) < 1e-12


def test_two_phase_runs_start_from_their_first_phase(finished_study):
    runs = finished_study / "results/runs/digits/linear-rho10/seed1"
    first = json.loads((runs / "over" / "run.json").read_text())
    second = json.loads((runs / "twophase_over" / "run.json").read_text())
    assert second["inputs"]["phase_one_fingerprint"] == first["fingerprint"]
    assert second["inputs"]["index_file"] == "imbalanced.npy" and second["trained_layers"] == ["fc2"]
    assert second["spec"]["protocol"]["lr"] == pytest.approx(0.002)


def test_stored_predictions_rescore_to_the_same_scores(finished_study):
    """predictions.h5 holds what scoring needs: rescoring from it, without the network, gives the
    rows the job wrote (silhouettes aside, which need features)."""
    from imbalance_study import datasets, imbalance, plan, predictions
    from imbalance_study.config import validate

    config = yaml.safe_load((finished_study / "study.yaml").read_text())
    validate(config)
    (run,) = [run for run in plan.resolve(config).runs if run.key == ("digits", "step-mu0.5-rho10", 1, "over")]
    dataset = datasets.load(finished_study / "results/datasets/digits.h5")
    imbalanced = imbalance.load_indices(finished_study / run.index_path(plan.IMBALANCED), len(dataset.train_labels))
    minority = imbalance.minority_mask(imbalance.class_counts_of(imbalanced, dataset.train_labels, 10))
    rescored = pd.DataFrame(predictions.rescore(finished_study / run.directory / "predictions.h5", dataset, minority,
                                                run.identity(10), taus=config["scoring"]["logit_adjustment_taus"]))
    written = pd.concat([pd.read_csv(path) for path in
                         (finished_study / "results/bundles/digits/step-mu0.5-rho10").glob("*/scores.csv")])
    written = written[(written["variant"] == "over") & (written["seed"] == 1) & (written["metric"] != "silhouette")]
    keys = ["iteration", "split", "thresholded", "tau", "metric", "class", "group"]
    merged = written.merge(rescored, on=keys, suffixes=("", "_rescored"), validate="one_to_one")
    assert len(merged) == len(written) == len(rescored) > 100
    assert set(merged["split"]) == {"train", "test"}
    # float32 log-probabilities stored, float64 computed in the job
    assert (merged["value"] - merged["value_rescored"]).abs().max() < 1e-5


def test_a_finished_study_has_nothing_to_do(finished_study):
    assert planned_jobs(snakemake(finished_study, "-n")) == {}


def run_manifests(workdir: Path) -> dict[str, str]:
    """Every run's manifest text, by run directory: a retrained run writes a new one."""
    return {str(path.parent.relative_to(workdir)): path.read_text()
            for path in sorted((workdir / "results" / "runs").rglob("run.json"))}


# The tests below that change a finished study build only its score table (SCORES): what they check
# is which runs were trained again and what the table holds, not the figures drawn from it (what a
# change reruns, figures included, is tests/test_dependencies.py's).
SCORES = "results/scores.csv"


def test_changing_one_methods_setting_retrains_only_that_method(finished_study, tmp_path):
    workdir = tmp_path / "study"
    shutil.copytree(finished_study, workdir, symlinks=True)
    before = run_manifests(workdir)
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["methods"]["under"]["train"] = {"lr": 0.01}
    snakemake(workdir, SCORES, config=config)
    after = run_manifests(workdir)
    assert set(after) == set(before)
    retrained = {run for run in after if after[run] != before[run]}
    assert retrained == {run for run in after if run.endswith("/under")} and len(retrained) == 3
    # The first phase changes, so the second phase that starts from it is trained again too.
    config["methods"]["over"] = {"sampler": "over", "ratio": 2}
    snakemake(workdir, SCORES, config=config)
    again = run_manifests(workdir)
    retrained = {run for run in again if again[run] != after[run]}
    assert retrained == {run for run in again if run.endswith(("/over", "/twophase_over"))} and len(retrained) == 6
    table = pd.read_csv(workdir / "results" / "scores.csv")
    assert set(table.loc[table["method"] == "over", "sampling_ratio"]) == {2}


def test_sampling_the_train_split_rescores_without_retraining(finished_study, tmp_path):
    """scoring.train_sample_per_class: the jobs score again, no network is trained again, the test
    split's scores stay, and the train split is scored on the capped sample, minority rows in full."""
    import h5py
    import numpy as np

    from imbalance_study import datasets

    workdir = tmp_path / "study"
    shutil.copytree(finished_study, workdir, symlinks=True)
    before_runs, before = run_manifests(workdir), pd.read_csv(workdir / "results" / "scores.csv")
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["scoring"] = {"train_sample_per_class": 10}
    snakemake(workdir, SCORES, config=config)
    assert run_manifests(workdir) == before_runs
    after = pd.read_csv(workdir / "results" / "scores.csv")
    keys = ["dataset", "profile", "seed", "variant", "iteration", "split", "thresholded", "tau", "metric", "class",
            "group"]
    merged = before.merge(after, on=keys, suffixes=("", "_sampled"), validate="one_to_one")
    assert len(merged) == len(before) == len(after)
    test_rows = merged["split"] == "test"
    assert (merged.loc[test_rows, "value"] == merged.loc[test_rows, "value_sampled"]).all()
    assert (merged.loc[~test_rows, "value"] != merged.loc[~test_rows, "value_sampled"]).any()
    dataset = datasets.load(workdir / "results/datasets/digits.h5")
    with h5py.File(workdir / "results/runs/digits/step-mu0.5-rho10/seed1/over/predictions.h5") as handle:
        rows = handle["train/rows"][...]
    # 40 examples of a majority class, 4 of a minority one (rho 10), oversampled to 40 views of 4 rows
    per_class = np.bincount(dataset.train_labels[rows], minlength=10)
    assert sorted(per_class.tolist()) == [4] * 5 + [10] * 5


def test_changing_one_rho_reruns_only_its_runs(finished_study):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["study"]["profiles"]["step"]["rho"] = [2, 20]
    # One job for the new profile's index files, one for its one-phase runs, one for its two-phase run;
    # the record of the config (provenance) follows every change of the config.
    assert planned_jobs(snakemake(finished_study, "-n", config=config)) == {
        "indices": 1, "train_bundle": 2, "aggregate_scores": 1, "figure": 2, "provenance": 1, "all": 1}
    snakemake(finished_study, "-n", config=TINY)  # leave the study's config as it was


def test_runs_per_job_packs_runs_into_jobs(tmp_path):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["study"]["seeds"] = [1, 2, 3]
    # Per profile: 9 one-phase runs and 3 two-phase runs; at most 4 per job: 3 + 1 jobs per profile.
    config["engine"] = {"runs_per_job": 4}
    assert planned_jobs(snakemake(tmp_path, "-n", config=config)) == {
        "prepare_dataset": 1, "indices": 3, "train_bundle": 12, "aggregate_scores": 1, "figure": 3, "provenance": 1,
        "all": 1}
    config["engine"] = {"runs_per_job": 1}
    assert planned_jobs(snakemake(tmp_path, "-n", config=config))["train_bundle"] == 36


def test_fig3_alone_builds_only_what_it_needs(tmp_path):
    planned = planned_jobs(snakemake(tmp_path, "-n", "figures/fig3.pdf", config=TINY))
    # fig3 shows step profiles only: their one-phase bundles, no two-phase runs, no aggregate table.
    assert planned == {"prepare_dataset": 1, "indices": 2, "train_bundle": 2, "figure": 1}


def test_lint_is_clean():
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--lint"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Lints for" not in result.stdout, result.stdout + result.stderr


def test_a_figure_the_study_does_not_draw_is_named_with_those_it_does(tmp_path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(TINY))
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "study.yaml"), "-n",
                             "figures/fig99.pdf"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert ("figures/fig99: not a figure this study draws (it draws fig3, fig5, fig8); the figures there are "
            "fig3, fig4, fig5, fig6, fig7, fig8, dynamics, table4, published, comparison") in result.stdout + result.stderr
