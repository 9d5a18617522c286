"""Tiny stand-ins for datasets that cannot be fetched offline, written in their own on-disk formats."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np

from imbalance_study.config import schema_errors
from imbalance_study.datasets import CIFAR10_DECLARED_CHECKSUMS, CIFAR10_FOLDER
from imbalance_study.source_facts import content_settings

CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _Py2Str(bytes):
    """Bytes pickled as a Python 2 ``str``, as every string in the official CIFAR-10 pickles is.

    Such a string loads as ``str`` with ``encoding="latin1"`` (torchvision) and as ``bytes`` with
    ``encoding="bytes"`` (the loader on the CIFAR-10 page, hence keys like ``b"data"``): a fixture
    must behave the same under both.
    """


class _Py2Pickler(pickle._Pickler):
    """The pure-Python pickler, protocol 2, writing ``_Py2Str`` with the BINSTRING opcodes of Python 2."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, text: _Py2Str) -> None:
        if len(text) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(text)]) + bytes(text))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(text)) + bytes(text))

    dispatch[_Py2Str] = _save_py2_str


def _dump_py2(payload, path: Path) -> None:
    with open(path, "wb") as handle:
        _Py2Pickler(handle, protocol=2).dump(payload)


def _cifar_like_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 32, 32, 3): a smooth colour pattern per class, with per-image contrast, shift and noise.

    Smooth patterns give the pixel covariance a few large eigenvalues, like natural images.
    """
    patterns = rng.uniform(40, 215, size=(10, 4, 4, 3))
    patterns = np.repeat(np.repeat(patterns, 8, axis=1), 8, axis=2)
    contrast = rng.uniform(0.5, 1.5, size=(len(labels), 1, 1, 1))
    brightness = rng.uniform(-30, 30, size=(len(labels), 1, 1, 1))
    noise = rng.normal(0, 20, size=(len(labels), 32, 32, 3))
    images = (patterns[labels] - 128) * contrast + 128 + brightness + noise
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def _cifar_batch(images: np.ndarray, labels: np.ndarray, title: str, first: int) -> dict:
    # The official layout: one row per image, the red, green and blue 32x32 planes one after another.
    rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
    return {_Py2Str(b"batch_label"): _Py2Str(title.encode()),
            _Py2Str(b"labels"): [int(label) for label in labels],
            _Py2Str(b"data"): rows,
            _Py2Str(b"filenames"): [_Py2Str(f"fixture_{first + index:06d}.png".encode()) for index in range(len(labels))]}


def write_cifar10_fixture(root: str | Path, per_class_train: int, per_class_test: int, seed: int = 0) -> Path:
    """A tiny CIFAR-10 in its python-version layout: ``root/cifar-10-batches-py/{data_batch_1..5,
    test_batch, batches.meta}`` and ``TEST_FIXTURE_MD5.json`` declaring the files' md5s (see
    ``datasets._cifar10_source`` for why). Returns the raw uint8 arrays as torchvision would give
    them: ``{"train": (images (N, 32, 32, 3), labels), "test": (...)}`` in file order.
    """
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        arrays[split] = (_cifar_like_images(labels, rng), labels.astype(np.int64))
    train_images, train_labels = arrays["train"]
    first = 0
    for number, chunk in enumerate(np.array_split(np.arange(len(train_labels)), 5), start=1):
        batch = _cifar_batch(train_images[chunk], train_labels[chunk], f"training batch {number} of 5", first)
        _dump_py2(batch, folder / f"data_batch_{number}")
        first += len(chunk)
    _dump_py2(_cifar_batch(*arrays["test"], "testing batch 1 of 1", first), folder / "test_batch")
    _dump_py2({_Py2Str(b"num_cases_per_batch"): int(np.ceil(len(train_labels) / 5)),
               _Py2Str(b"label_names"): [_Py2Str(name.encode()) for name in CIFAR10_LABEL_NAMES],
               _Py2Str(b"num_vis"): 3072}, folder / "batches.meta")
    names = [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch", "batches.meta"]
    declared = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in names}
    (folder / CIFAR10_DECLARED_CHECKSUMS).write_text(json.dumps(declared, indent=2, sort_keys=True) + "\n")
    return arrays


def write_image_folder_fixture(root: str | Path, n_classes: int, per_class, size=(48, 40), seed: int = 0) -> Path:
    """An ImageFolder tree ``root/class_XX/image_YYY.{png,jpg}`` of small real images.

    ``per_class``: one count for every class, or a list with one count per class. ``size``: (width,
    height) or one side; every fourth image is a quarter larger, so resizing has work to do. Images
    alternate between PNG and JPEG; each class has its own mean colour.
    """
    from PIL import Image

    root = Path(root)
    counts = [per_class] * n_classes if isinstance(per_class, int) else list(per_class)
    if len(counts) != n_classes:
        raise ValueError(f"per_class lists {len(counts)} counts for {n_classes} classes")
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    for label, count in enumerate(counts):
        folder = root / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.uniform(30, 225, size=3)
        for index in range(count):
            grow = 1.25 if index % 4 == 3 else 1.0
            shape = (int(height * grow), int(width * grow), 3)
            pixels = np.clip(colour + rng.normal(0, 25, size=shape), 0, 255).astype(np.uint8)
            suffix = "png" if index % 2 == 0 else "jpg"
            Image.fromarray(pixels).save(folder / f"image_{index:03d}.{suffix}")
    return root


def write_csv_fixture(path: str | Path, per_class: dict, n_features: int = 4, seed: int = 0,
                      label_column: str = "label") -> Path:
    """A CSV of ``n_features`` numeric columns f0.. and a label column; ``per_class`` maps label -> rows.

    Class ``k`` (in the order given) has feature means shifted by ``k``, on scales from 1 to 100.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for shift, (label, count) in enumerate(per_class.items()):
        scales = np.logspace(0, 2, n_features)
        features = (rng.normal(size=(count, n_features)) + shift) * scales
        frame = pd.DataFrame(features, columns=[f"f{index}" for index in range(n_features)])
        frame[label_column] = label
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)
    path = Path(path)
    table.to_csv(path, index=False)
    return path


def dataset_settings(spec: dict) -> dict:
    """A dataset's settings as the workflow hands them to ``datasets.prepare``: the schema's defaults
    filled in, then only the keys its content depends on (``source_facts.content_settings``)."""
    config = {"datasets": {"data": {"model": "mlp", "protocol": "any", **spec}},
              "protocols": {"any": {"iterations": 1, "batch_size": 1, "lr": 0.1}}, "methods": {"any": {}},
              "study": {"datasets": ["data"], "seeds": [0], "methods": ["any"], "profiles": {"linear": {"rho": [1]}}}}
    problems = schema_errors(config)
    assert not problems, problems
    return content_settings(config["datasets"]["data"])
