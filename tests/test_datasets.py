import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from imbalance_study import datasets

from . import fixtures
from .fixtures import dataset_settings

SPEC = {"source": "sklearn_digits", "train_per_class": 100, "test_per_class": 40, "seed": 0}


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.h5"
    datasets.prepare("digits", dataset_settings(SPEC), path)
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
    again = datasets.prepare("digits", dataset_settings(SPEC), tmp_path / "again.h5")
    assert datasets.content_digest(again) == datasets.load(digits_file).digest


def test_a_cap_larger_than_the_data_is_refused(tmp_path):
    with pytest.raises(datasets.DatasetError, match="fewer than the 170"):
        datasets.prepare("digits", dataset_settings({**SPEC, "train_per_class": 170}), tmp_path / "x.h5")


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


# ------------------------------------------------------------------ format 2: kind and validation

def test_draws_without_validation_are_those_of_format_1(digits_file):
    # The digest of this spec as written by format 1 (commit e86013c): old files and indices stay valid.
    assert datasets.load(digits_file).digest == "9288aea5a208c56c3fc7043228f8a7d85df8852806ca5ffff592d1950447009e"


def test_a_file_without_its_kind_is_refused_naming_it(digits_file, tmp_path):
    old = tmp_path / "old.h5"
    old.write_bytes(digits_file.read_bytes())
    with h5py.File(old, "r+") as handle:
        del handle.attrs["kind"]
    with pytest.raises(datasets.DatasetError, match=r"old\.h5: cannot read the HDF5 file.*kind"):
        datasets.load(old)


def test_validation_is_balanced_held_out_first_and_checksummed(tmp_path):
    path = tmp_path / "digits_val.h5"
    dataset = datasets.prepare("digits", dataset_settings({**SPEC, "validation_per_class": 20}), path)
    loaded = datasets.load(path)
    assert np.bincount(loaded.validation_labels).tolist() == [20] * 10
    assert np.bincount(loaded.train_labels).tolist() == [100] * 10
    assert loaded.validation_images.shape == (200, 8, 8) and loaded.digest == dataset.digest
    assert loaded.splits() == ("train", "validation", "test")
    with h5py.File(path, "r+") as handle:
        handle["validation/labels"][0] = (handle["validation/labels"][0] + 1) % 10
    with pytest.raises(datasets.DatasetError, match="digits_val.h5.*checksum"):
        datasets.load(path)


def test_validation_counts_against_the_smallest_class(tmp_path):
    # 178 zeros in the digits: 40 for validation and 40 for the test set leave 98 for a pool of 100.
    with pytest.raises(datasets.DatasetError, match="training pool: class 0 has 98 examples, fewer than the 100"):
        datasets.prepare("digits", dataset_settings({**SPEC, "validation_per_class": 40}), tmp_path / "x.h5")


# ------------------------------------------------------------------------------------ CIFAR-10

CIFAR_SPEC = {"source": "torchvision_cifar10", "train_per_class": 30, "validation_per_class": 5,
              "test_per_class": 12, "seed": 0}


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """A fixture CIFAR-10 (40 training and 12 test images per class) and the dataset prepared from it."""
    folder = tmp_path_factory.mktemp("cifar")
    raw = fixtures.write_cifar10_fixture(folder / "torchvision", per_class_train=40, per_class_test=12, seed=0)
    spec = {**CIFAR_SPEC, "root": str(folder / "torchvision")}
    datasets.prepare("cifar10", dataset_settings(spec), folder / "cifar10.h5")
    return {"path": folder / "cifar10.h5", "raw": raw, "spec": spec, "root": folder / "torchvision"}


def test_cifar_fixture_reads_like_the_official_pickles(cifar):
    import pickle

    with open(cifar["root"] / "cifar-10-batches-py" / "data_batch_1", "rb") as handle:
        as_bytes = pickle.load(handle, encoding="bytes")
    with open(cifar["root"] / "cifar-10-batches-py" / "batches.meta", "rb") as handle:
        meta = pickle.load(handle, encoding="latin1")
    assert set(as_bytes) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (80, 3072)
    assert meta["label_names"][0] == "airplane"
    # the red plane comes first in a row
    images, _ = cifar["raw"]["train"]
    assert np.array_equal(as_bytes[b"data"][0, :1024].reshape(32, 32), images[0, :, :, 0])


def test_cifar_is_balanced_float32_with_its_provenance(cifar):
    dataset = datasets.load(cifar["path"])
    assert dataset.kind == "images" and dataset.n_classes == 10 and dataset.class_names[9] == "truck"
    assert dataset.train_images.dtype == np.float32 and dataset.image_shape == (32, 32, 3)
    assert np.bincount(dataset.train_labels).tolist() == [30] * 10
    assert np.bincount(dataset.validation_labels).tolist() == [5] * 10
    assert np.bincount(dataset.test_labels).tolist() == [12] * 10
    splits = [dataset.train_images, dataset.validation_images, dataset.test_images]
    rows = [{image.tobytes() for image in images} for images in splits]
    assert sum(len(part) for part in rows) == len(set.union(*rows)) == 470  # disjoint, no repeats
    with h5py.File(cifar["path"]) as handle:
        provenance = json.loads(handle.attrs["provenance"])
        assert handle["preprocessing"].attrs["method"] == "gcn_zca"
        assert handle["preprocessing/gcn"].attrs["scale"] == 55.0
        assert handle["preprocessing/zca_matrix"].shape == (3072, 3072)
        assert handle["preprocessing/zca_matrix"].attrs["filter_bias"] == pytest.approx(0.1)
    assert provenance["loader"] == "torchvision.datasets.CIFAR10" and "test fixture" in provenance["checksums"]


def test_gcn_gives_every_image_zero_mean_and_norm_55():
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    images[3] = 77  # a flat image has nothing to normalise and stays zero
    design = datasets.global_contrast_normalize(images)
    assert np.allclose(design.mean(axis=1), 0)
    assert np.allclose(np.linalg.norm(design[:3], axis=1), 55.0)
    assert np.all(design[3] == 0)


def test_zca_whitens_the_training_pool_up_to_its_filter_bias(cifar):
    dataset = datasets.load(cifar["path"])
    whitened = dataset.train_images.reshape(300, -1).astype(np.float64)
    matrix = dataset.preprocessing["zca_matrix"].astype(np.float64)
    assert np.allclose(whitened.mean(axis=0), 0, atol=1e-4)
    # With P = V diag((lambda + b)^-1/2) V^T the pool's covariance becomes V diag(lambda / (lambda + b)) V^T
    # = I - b P^2: identity along every direction whose variance is well above b = 0.1. Checked along
    # random directions u (u^T C u = |u|^2 - b |P u|^2), which costs far less than the full 3072 x 3072.
    directions = np.random.default_rng(0).normal(size=(3072, 40))
    projected = whitened @ directions
    covariance = projected.T @ projected / len(whitened)
    expected = directions.T @ directions - 0.1 * (matrix @ directions).T @ (matrix @ directions)
    assert np.allclose(covariance, expected, rtol=1e-3, atol=1e-2)
    variances = np.linalg.svd(whitened, compute_uv=False) ** 2 / len(whitened)
    assert np.all(variances[:9] > 0.99) and np.all(variances <= 1 + 1e-4)  # the class patterns' directions


def test_zca_from_the_svd_equals_the_eigendecomposition():
    design = datasets.global_contrast_normalize(
        np.random.default_rng(1).integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8))
    mean, thin = datasets.fit_zca(design)  # 20 images, 48 values each: the SVD route
    full = datasets._zca_by_eigh(design, mean, datasets.ZCA_FILTER_BIAS)
    assert np.allclose(thin, full, atol=1e-10)
    wide = np.concatenate([design] * 3)  # 60 rows, same covariance: the eigendecomposition route
    assert np.allclose(datasets.fit_zca(wide)[1], full, atol=1e-10)


def test_apply_preprocessing_reproduces_the_stored_test_images(cifar):
    raw_images, raw_labels = cifar["raw"]["test"]  # all 12 per class are drawn, so in file order
    dataset = datasets.load(cifar["path"])
    assert np.array_equal(dataset.test_labels, raw_labels)
    again = datasets.apply_preprocessing(raw_images, cifar["path"])
    assert again.dtype == np.float32 and np.allclose(again, dataset.test_images, atol=1e-5)
    with h5py.File(cifar["path"]) as handle:
        assert np.allclose(datasets.apply_preprocessing(raw_images[:3], handle), dataset.test_images[:3], atol=1e-5)


def test_cifar_without_preprocessing_keeps_raw_pixels_and_copies_from_a_source(cifar, tmp_path):
    spec = {**cifar["spec"], "root": str(tmp_path / "copy"), "copy_from": str(cifar["root"]), "preprocessing": "none",
            "validation_per_class": 0}
    dataset = datasets.prepare("cifar10", dataset_settings(spec), tmp_path / "raw.h5")
    assert dataset.train_images.dtype == np.uint8 and dataset.preprocessing == {}
    assert np.array_equal(dataset.test_images, cifar["raw"]["test"][0])
    assert datasets.apply_preprocessing(dataset.test_images, tmp_path / "raw.h5") is dataset.test_images


def test_cifar_missing_or_corrupt_batches_are_named(cifar, tmp_path):
    with pytest.raises(datasets.DatasetError, match="no intact CIFAR-10 python batches.*copy_from"):
        datasets.prepare("cifar10", dataset_settings({**cifar["spec"], "root": str(tmp_path / "empty")}), tmp_path / "x.h5")
    corrupt = tmp_path / "corrupt"
    fixtures.write_cifar10_fixture(corrupt, per_class_train=2, per_class_test=1)
    batch = corrupt / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-10] + bytes(10))
    with pytest.raises(datasets.DatasetError, match="do not match the md5s"):
        datasets.prepare("cifar10", dataset_settings({**cifar["spec"], "root": str(corrupt), "preprocessing": "none",
                                     "train_per_class": 1, "validation_per_class": 0, "test_per_class": 1}),
                         tmp_path / "x.h5")


# ------------------------------------------------------------------------------------- tabular

def test_breast_cancer_is_standardised_on_the_training_pool(tmp_path):
    from sklearn.datasets import load_breast_cancer

    path = tmp_path / "bc.h5"
    spec = {"source": "sklearn_breast_cancer", "train_per_class": 150, "validation_per_class": 12,
            "test_per_class": 50, "seed": 2}
    datasets.prepare("bc", dataset_settings(spec), path)
    dataset = datasets.load(path)
    assert dataset.kind == "tabular" and dataset.class_names == ["malignant", "benign"]
    assert dataset.image_shape == (30,) and dataset.train_images.dtype == np.float32
    assert np.bincount(dataset.train_labels).tolist() == [150, 150]
    assert np.bincount(dataset.validation_labels).tolist() == [12, 12]
    assert np.allclose(dataset.train_images.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(dataset.train_images.std(axis=0), 1, atol=1e-5)
    # Undoing the stored scaler gives back rows of the original data, which apply_preprocessing maps again.
    raw_test = dataset.test_images * dataset.preprocessing["standard_scale"] + dataset.preprocessing["standard_mean"]
    original = load_breast_cancer().data
    nearest = np.abs(raw_test[:, None, :] - original[None]).max(axis=2).argmin(axis=1)
    assert np.allclose(raw_test, original[nearest], rtol=1e-5, atol=1e-3)
    assert np.allclose(datasets.apply_preprocessing(original[nearest], path), dataset.test_images, atol=1e-5)
    with pytest.raises(datasets.DatasetError, match=r"class 0 \('malignant'\) has 12 examples, fewer than the 150"):
        datasets.prepare("bc", dataset_settings({**spec, "validation_per_class": 0, "test_per_class": 200}), tmp_path / "x.h5")


def test_csv_labels_are_numbered_in_sorted_order(tmp_path):
    csv = fixtures.write_csv_fixture(tmp_path / "table.csv", {"setosa": 30, "versicolor": 40, "arctic": 25})
    dataset = datasets.prepare("table", dataset_settings({"source": "csv", "path": str(csv), "train_per_class": 15,
                                         "validation_per_class": 3, "test_per_class": 5}), tmp_path / "table.h5")
    assert dataset.class_names == ["arctic", "setosa", "versicolor"] and dataset.image_shape == (4,)
    assert np.bincount(dataset.train_labels).tolist() == [15, 15, 15]
    with h5py.File(tmp_path / "table.h5") as handle:
        assert json.loads(handle.attrs["feature_names"]) == ["f0", "f1", "f2", "f3"]
        assert handle.attrs["split"] == "pooled"
    numbers = fixtures.write_csv_fixture(tmp_path / "numbers.csv", {10: 12, 2: 12}, label_column="y")
    dataset = datasets.prepare("numbers", dataset_settings({"source": "csv", "path": str(numbers), "label_column": "y",
                                           "train_per_class": 8, "test_per_class": 4}), tmp_path / "numbers.h5")
    assert dataset.class_names == ["2", "10"]  # numerically sorted, not as text


def test_csv_problems_name_the_file_and_column(tmp_path):
    spec = {"source": "csv", "train_per_class": 5, "test_per_class": 2}
    with pytest.raises(datasets.DatasetError, match="datasets.t.path: no table file .*absent.csv"):
        datasets.prepare("t", dataset_settings({**spec, "path": str(tmp_path / "absent.csv")}), tmp_path / "x.h5")
    good = fixtures.write_csv_fixture(tmp_path / "good.csv", {"a": 10, "b": 6})
    with pytest.raises(datasets.DatasetError, match="good.csv: no label column 'class'"):
        datasets.prepare("t", dataset_settings({**spec, "path": str(good), "label_column": "class"}), tmp_path / "x.h5")
    with pytest.raises(datasets.DatasetError, match=r"good.csv training pool: class 1 \('b'\) has 4 examples"):
        datasets.prepare("t", dataset_settings({**spec, "path": str(good)}), tmp_path / "x.h5")
    text = tmp_path / "text.csv"
    text.write_text("f0,colour,label\n1.0,red,a\n2.0,blue,b\n")
    with pytest.raises(datasets.DatasetError, match=r"text.csv: column 'colour' is not numeric \(values such as 'red'\)"):
        datasets.prepare("t", dataset_settings({**spec, "path": str(text)}), tmp_path / "x.h5")
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("f0,f1,label\n1.0,2.0,a\n2.0,,b\n")
    with pytest.raises(datasets.DatasetError, match=r"gaps.csv: missing values in column 'f1' \(1 row\), 1 row in all"):
        datasets.prepare("t", dataset_settings({**spec, "path": str(gaps)}), tmp_path / "x.h5")


# -------------------------------------------------------------------------------- image folders

FOLDER_SPEC = {"source": "image_folder", "train_per_class": 5, "test_per_class": 2,
               "image_size": {"resize": 40, "crop": 32}, "seed": 0}


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folders")
    train_root = fixtures.write_image_folder_fixture(folder / "train", 3, [7, 3, 8], size=(48, 40))
    test_root = fixtures.write_image_folder_fixture(folder / "val", 3, 2, size=(40, 48), seed=1)
    spec = {**FOLDER_SPEC, "train_root": str(train_root), "test_root": str(test_root), "validation_per_class": 1}
    datasets.prepare("folders", dataset_settings(spec), folder / "folders.h5")
    return {"path": folder / "folders.h5", "spec": spec, "folder": folder}


def test_image_folder_lists_paths_and_keeps_short_classes_whole(image_folders):
    dataset = datasets.load(image_folders["path"])
    assert dataset.kind == "image_folder" and dataset.train_images is None
    assert dataset.class_names == ["class_00", "class_01", "class_02"] and dataset.image_shape == (32, 32, 3)
    # class_01 has 3 images: 1 goes to validation, the other 2 stay, below the cap of 5
    assert np.bincount(dataset.train_labels).tolist() == [5, 2, 5]
    assert np.bincount(dataset.validation_labels).tolist() == [1, 1, 1]
    assert np.bincount(dataset.test_labels).tolist() == [2, 2, 2]
    assert set(dataset.train_paths).isdisjoint(dataset.validation_paths)
    assert all(path.startswith(f"class_{label:02d}/") for path, label in zip(dataset.train_paths, dataset.train_labels))
    assert Path(dataset.roots["test"]).name == "val" and Path(dataset.roots["validation"]).name == "train"
    with h5py.File(image_folders["path"]) as handle:
        assert json.loads(handle.attrs["train_class_counts"]) == [5, 2, 5]
        assert handle.attrs["resize"] == 40 and handle.attrs["crop"] == 32
        assert handle["train"].attrs["root"] == image_folders["spec"]["train_root"]


def test_image_folder_paths_are_checksummed(image_folders, tmp_path):
    altered = tmp_path / "altered.h5"
    altered.write_bytes(image_folders["path"].read_bytes())
    with h5py.File(altered, "r+") as handle:
        handle["test/paths"][0] = "class_00/elsewhere.png"
    with pytest.raises(datasets.DatasetError, match="altered.h5.*checksum"):
        datasets.load(altered)


def test_image_folder_without_test_root_draws_disjoint_splits(image_folders, tmp_path):
    spec = {**image_folders["spec"], "train_per_class": 10, "test_per_class": 1}
    del spec["test_root"]
    dataset = datasets.prepare("folders", dataset_settings(spec), tmp_path / "pooled.h5")
    # 7, 3 and 8 images, less one for validation and one for the test set each, all under the cap
    assert np.bincount(dataset.train_labels).tolist() == [5, 1, 6]
    parts = [set(dataset.train_paths), set(dataset.validation_paths), set(dataset.test_paths)]
    assert sum(map(len, parts)) == len(set.union(*parts)) == 18
    with pytest.raises(datasets.DatasetError, match=r"training pool: class 1 \('class_01'\) has 0 examples"):
        datasets.prepare("folders", dataset_settings({**spec, "test_per_class": 2}), tmp_path / "x.h5")


def test_image_folder_problems_are_named(image_folders, tmp_path):
    spec = image_folders["spec"]
    with pytest.raises(datasets.DatasetError, match="datasets.f.train_root: no folder"):
        datasets.prepare("f", dataset_settings({**spec, "train_root": str(tmp_path / "absent")}), tmp_path / "x.h5")
    with pytest.raises(datasets.DatasetError, match="datasets.f.n_classes: 1000, but .* has 3 class folders"):
        datasets.prepare("f", dataset_settings({**spec, "n_classes": 1000}), tmp_path / "x.h5")
    other = fixtures.write_image_folder_fixture(tmp_path / "other", 4, 2, size=16)
    with pytest.raises(datasets.DatasetError, match=r"test_root: .* \['class_03'\]"):
        datasets.prepare("f", dataset_settings({**spec, "test_root": str(other)}), tmp_path / "x.h5")
    with pytest.raises(datasets.DatasetError, match="validation set: class 1 .* has 3 examples, fewer than the 4"):
        datasets.prepare("f", dataset_settings({**spec, "validation_per_class": 4}), tmp_path / "x.h5")


def test_image_folder_subset_crops_flips_and_normalises(image_folders):
    import torch

    dataset = datasets.load(image_folders["path"])
    test = datasets.ImageFolderSubset(dataset, "test", [0, 3], train=False, resize=40, crop=32)
    image, label = test[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == int(dataset.test_labels[3])
    pixels = image * torch.tensor(datasets.IMAGENET_STD)[:, None, None] + torch.tensor(datasets.IMAGENET_MEAN)[:, None, None]
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert torch.equal(test[1][0], image)  # the centre crop has no randomness
    train = datasets.ImageFolderSubset(dataset, "train", None, train=True, resize=40, crop=32, seed=5)
    first = [train[index][0] for index in range(4)]
    train.reseed(5)
    assert all(torch.equal(a, train[index][0]) for index, a in enumerate(first))
    assert torch.equal(train[(2, 123)][0], train[(2, 123)][0])  # an explicit seed per item
    crops = {train[(0, seed)][0].sum().item() for seed in range(12)}
    assert len(crops) > 1  # different seeds give different crops or flips


def test_image_folder_subset_is_reproducible_across_workers(image_folders):
    import torch

    dataset = datasets.load(image_folders["path"])
    subset = datasets.ImageFolderSubset(dataset, "train", None, train=True, resize=40, crop=32)

    def batches(seed):
        loader = torch.utils.data.DataLoader(subset, batch_size=3, shuffle=True, num_workers=2,
                                             worker_init_fn=datasets.ImageFolderSubset.seed_worker,
                                             generator=torch.Generator().manual_seed(seed))
        return [(images, labels) for images, labels in loader]

    first, again = batches(7), batches(7)
    assert len(first) == 4
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
