import h5py
import numpy as np
import pytest

from imbalance_study import datasets

SPEC = {"source": "sklearn_digits", "train_per_class": 100, "test_per_class": 40, "seed": 0}


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.h5"
    datasets.prepare("digits", SPEC, path)
    return path


def test_digits_are_balanced_uint8_with_provenance(digits_file):
    dataset = datasets.load(digits_file)
    assert np.bincount(dataset.train_labels).tolist() == [100] * 10
    assert np.bincount(dataset.test_labels).tolist() == [40] * 10
    assert dataset.train_images.dtype == np.uint8 and dataset.image_shape == (8, 8)
    assert dataset.train_images.max() == 255
    with h5py.File(digits_file) as handle:
        assert "sklearn.datasets.load_digits" in handle.attrs["provenance"]
        assert handle.attrs["train_per_class"] == 100


def test_train_and_test_are_disjoint(digits_file):
    from sklearn.datasets import load_digits

    dataset = datasets.load(digits_file)
    # 1797 images, 1260 distinct ones never shared between the splits' sources
    assert len(dataset.train_labels) + len(dataset.test_labels) <= len(load_digits().target)
    train_rows = {row.tobytes() for row in dataset.train_images}
    shared = sum(row.tobytes() in train_rows for row in dataset.test_images)
    assert shared <= 2  # the digits set itself holds a few exact duplicate images


def test_preparing_twice_gives_the_same_content(digits_file, tmp_path):
    again = datasets.prepare("digits", SPEC, tmp_path / "again.h5")
    assert datasets.content_digest(again) == datasets.load(digits_file).digest


def test_a_cap_larger_than_the_data_is_refused(tmp_path):
    with pytest.raises(datasets.DatasetError, match="fewer than the 170"):
        datasets.prepare("digits", {**SPEC, "train_per_class": 170}, tmp_path / "x.h5")


def test_corrupt_and_truncated_files_name_the_file(digits_file, tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(digits_file.read_bytes()[:2000])
    with pytest.raises(datasets.DatasetError, match="truncated.h5"):
        datasets.load(truncated)
    altered = tmp_path / "altered.h5"
    altered.write_bytes(digits_file.read_bytes())
    with h5py.File(altered, "r+") as handle:
        handle["train/labels"][0] = (handle["train/labels"][0] + 1) % 10
    with pytest.raises(datasets.DatasetError, match="altered.h5.*checksum"):
        datasets.load(altered)
