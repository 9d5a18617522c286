"""A user's own imbalanced table, studied as it is: the natural profile, profiles on top of natural
counts, set sizes for protocols in epochs, and the short form `--config data=... label=...` run end
to end on a 97/3 CSV."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from imbalance_study import config as study_config
from imbalance_study import imbalance, plan, sampling, set_sizes, your_data

REPO = Path(__file__).resolve().parents[1]


def write_97_3(path: Path, rows: int = 1000, seed: int = 0) -> Path:
    """A 97/3 table (exactly 3% positives): numeric features whose means depend on the class, and one
    text column."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(rows, dtype=int)
    labels[rng.choice(rows, rows * 3 // 100, replace=False)] = 1
    features = rng.normal(size=(rows, 5)) + labels[:, None] * np.array([1.5, -1.0, 0.5, 0.0, 0.0])
    table = pd.DataFrame(features, columns=[f"x{i}" for i in range(5)])
    table["site"] = rng.choice(["north", "south"], rows)
    table["outcome"] = labels
    table.to_csv(path, index=False)
    return path


def test_the_natural_profile_keeps_the_pool_and_others_apply_on_top_of_it():
    labels = np.repeat([0, 1, 2], [300, 40, 120])
    natural = imbalance.imbalanced_indices(labels, imbalance.natural(), imbalance.NATURAL, seed=1)
    assert np.array_equal(natural, np.arange(len(labels)))
    # Step on top of natural counts: the smallest class (ranked by natural count) is the minority,
    # cut to largest / rho unless it is already smaller; the others keep their counts.
    counts = imbalance.natural_counts(imbalance.step(1 / 3, 10), np.array([300, 40, 120]))
    assert counts.tolist() == [300, 30, 120]
    assert imbalance.natural_counts(imbalance.step(1 / 3, 5), np.array([300, 40, 120])).tolist() == [300, 40, 120]
    drawn = imbalance.imbalanced_indices(labels, imbalance.step(1 / 3, 10), imbalance.NATURAL, seed=1)
    assert np.bincount(labels[drawn]).tolist() == [300, 30, 120]


def test_set_sizes_are_the_sizes_of_the_index_files_drawn():
    settings = {"source": "sklearn_digits", "train_per_class": 50, "minority_classes": "random"}
    labels = np.repeat(np.arange(10), 50)
    profile = imbalance.step(0.5, 10)
    imbalanced = imbalance.imbalanced_indices(labels, profile, 50, seed=3)
    for index in (sampling.IMBALANCED, sampling.IndexFile("over"), sampling.IndexFile("under"),
                  sampling.IndexFile("over", 5.0)):
        drawn = sampling.sample(imbalanced, labels, index, seed=3, context="digits/x")
        assert set_sizes.training_examples("digits", settings, profile, index) == len(drawn)


def test_a_protocol_in_epochs_gives_each_run_the_iterations_of_its_own_set():
    config = yaml.safe_load((REPO / "configs" / "tabular_dynamics.yaml").read_text())
    study_config.validate(config)
    study = plan.resolve(config)
    runs = {(run.dataset, run.profile.name, run.method.variant): run for run in study.runs if run.seed == 1}
    baseline, over = runs[("cancer", "natural", "baseline")], runs[("cancer", "natural", "over")]
    epochs, batch = config["protocols"]["adam_epochs"]["epochs"], config["protocols"]["adam_epochs"]["batch_size"]
    assert baseline.protocol.examples < over.protocol.examples
    for run in (baseline, over):
        assert run.protocol.iterations == -(-epochs * run.protocol.examples // batch)
        assert run.protocol.optimizer == "adam"


def test_the_short_form_replaces_the_study_with_one_of_the_users_table(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(data=str(tmp_path / "Patients 2024.csv"), label="outcome", categorical="site")
    your_data.expand_short_form(config, REPO)
    assert list(config["datasets"]) == ["patients_2024"] and config["study"]["datasets"] == ["patients_2024"]
    dataset = config["datasets"]["patients_2024"]
    assert (dataset["path"], dataset["label_column"], dataset["categorical_columns"]) == (
        str(tmp_path / "Patients 2024.csv"), "outcome", ["site"])
    assert dataset["train_per_class"] == "natural" and config["study"]["profiles"] == {"natural": {}}
    assert "data" not in config and "label" not in config and "digits" not in config["datasets"]


def test_the_short_form_needs_the_file():
    with pytest.raises(your_data.ShortFormError, match="give data= too"):
        your_data.expand_short_form({"label": "y"}, REPO)


def test_a_bad_table_is_refused_before_any_job_with_the_file_named(tmp_path):
    path = write_97_3(tmp_path / "bad.csv")
    table = pd.read_csv(path)
    table.loc[[3, 7], "x1"] = np.nan
    table.to_csv(path, index=False)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(data=str(path), label="outcome", categorical="site")
    your_data.expand_short_form(config, REPO)
    with pytest.raises(study_config.ConfigError) as error:
        study_config.validate(config)
    assert "bad.csv" in str(error.value) and "x1" in str(error.value)


@pytest.mark.workflow
def test_a_97_3_csv_runs_end_to_end_from_the_short_command(tmp_path):
    # 500 rows (485 / 15): the short form's study is fixed (configs/your_data.yaml, 3 seeds of 10
    # methods for 40 epochs), so the table's size is what sets the time this takes.
    write_97_3(tmp_path / "patients.csv", rows=500)
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(tmp_path), "--configfile", str(REPO / "config.yaml"), "--cores", "2",
               "--config", "data=patients.csv", "label=outcome", "categorical=site"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    table = pd.read_csv(tmp_path / "results" / "scores.csv")
    methods = yaml.safe_load((REPO / "configs" / "your_data.yaml").read_text())["study"]["methods"]
    assert set(table["method"]) == set(methods)
    assert set(table["profile"]) == {"natural"} and set(table["test_set"]) == {"stratified"}
    # The natural ratio 97/3 in the training part: a stratified 20% test set leaves 388 / 12 of 485 / 15.
    assert set(table["rho"]) == {388 / 12} and (table["rho"] == table["realised_rho"]).all()
    assert set(table["training_examples"]) == {400}
    for figure in ("fig8", "dynamics", "comparison"):
        assert (tmp_path / "figures" / f"{figure}.pdf").read_bytes().startswith(b"%PDF")
    page = (tmp_path / "figures" / "comparison.html").read_text()
    assert "natural" in page and all(method in page for method in methods)
    report = subprocess.run(command[:-4] + ["--report", str(tmp_path / "report.zip"), "--config", "data=patients.csv",
                                            "label=outcome", "categorical=site"],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    provenance = json.loads((tmp_path / "results" / "scores.provenance.json").read_text())
    assert provenance["config"]["datasets"]["patients"]["train_per_class"] == "natural"
