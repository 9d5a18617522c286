"""The workflow end to end on a tiny digits study, and what a dry run says after a change."""

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
    "methods": {"baseline": {"sampler": "none"}, "over": {"sampler": "over"}, "under": {"sampler": "under"}},
    "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline", "over", "under"],
              "profiles": {"step": {"mu": [0.5], "rho": [2, 10]}}},
    "figures": {"fig3": {"methods": ["baseline", "over"]}},
}


def snakemake(workdir: Path, *arguments: str, config: dict | None = None) -> str:
    if config is not None:
        (workdir / "study.yaml").write_text(yaml.safe_dump(config))
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(workdir / "study.yaml"), "--cores", "2",
               *arguments]
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


def test_the_study_produces_scores_and_fig3(finished_study):
    pdf = finished_study / "figures" / "fig3.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    table = pd.read_csv(finished_study / "results" / "scores.csv")
    assert set(table["method"]) == {"baseline", "over", "under"}
    assert set(table["iteration"]) == {20, 80}
    assert set(table["metric"]) == {"roc_auc", "accuracy", "recall", "loss"}
    assert set(table["split"]) == {"train", "test"}
    final = table[(table["iteration"] == 80) & (table["metric"] == "roc_auc") & ~table["thresholded"]]
    assert len(final) == 6 and final["value"].between(0.5, 1.0).all()
    indices = sorted(p.name for p in (finished_study / "results/indices/digits/step-mu0.5-rho10/seed1").iterdir())
    assert indices == ["imbalanced.npy", "over.npy", "under.npy"]


def test_a_finished_study_has_nothing_to_do(finished_study):
    assert planned_jobs(snakemake(finished_study, "-n")) == {}


def test_changing_one_methods_setting_reruns_only_that_method(finished_study):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["methods"]["over"]["train"] = {"lr": 0.01}
    assert planned_jobs(snakemake(finished_study, "-n", config=config)) == {
        "train": 2, "score": 2, "aggregate_scores": 1, "fig3": 1, "all": 1}
    config["methods"]["over"] = {"sampler": "over", "ratio": 2}
    assert planned_jobs(snakemake(finished_study, "-n", config=config)) == {
        "sampled_index": 2, "train": 2, "score": 2, "aggregate_scores": 1, "fig3": 1, "all": 1}


def test_changing_one_rho_reruns_only_its_runs(finished_study):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["study"]["profiles"]["step"]["rho"] = [2, 20]
    assert planned_jobs(snakemake(finished_study, "-n", config=config)) == {
        "imbalanced_index": 1, "sampled_index": 2, "train": 3, "score": 3, "aggregate_scores": 1, "fig3": 1, "all": 1}
    snakemake(finished_study, "-n", config=TINY)  # leave the study's config as it was


def test_fig3_alone_builds_only_what_it_needs(tmp_path):
    planned = planned_jobs(snakemake(tmp_path, "-n", "figures/fig3.pdf", config=TINY))
    # fig3 shows baseline and over only: no undersampling, no aggregate table.
    assert planned == {"prepare_dataset": 1, "imbalanced_index": 2, "sampled_index": 2, "train": 4,
                       "score": 4, "fig3": 1}


def test_lint_is_clean():
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--lint"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Lints for" not in result.stdout, result.stdout + result.stderr
