"""Scoring a run: every checkpoint of its manifest, on the splits a study asks for.

The numbers themselves are ``metrics``'; this module evaluates the networks (in-memory splits moved
to the device once per job, image folders decoded batch by batch), picks the rows of the train split
(the training set as the run saw it, each distinct example once, weighted) and writes the score rows
and, when asked, the predictions (``predictions``).
"""

from __future__ import annotations

import csv

import numpy as np
import torch

from .metrics import PLAIN_TAU, score, silhouette_rows

SPLITS = ("test", "validation", "train")


@torch.inference_mode()
def log_probabilities(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 2048) -> np.ndarray:
    """float64 log-probabilities of ``inputs`` (N, C, H, W) under ``model`` in eval mode."""
    model.eval()
    logits = []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start: start + batch_size]
        short = batch_size - len(chunk)
        if short and inputs.is_cuda and len(inputs) > batch_size:
            # Every chunk the same shape: cudnn.benchmark tunes its kernels once per shape, and each
            # run's last chunk would otherwise be a new one. The padding rows are dropped.
            chunk = torch.cat([chunk, chunk.new_zeros((short, *chunk.shape[1:]))])
        logits.append(model(chunk)[: batch_size - short].double())
    return torch.log_softmax(torch.cat(logits), dim=1).cpu().numpy()


def train_split_rows(training: np.ndarray, labels: np.ndarray, per_class: int = 0, in_full=None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The pool rows to evaluate for the train split, and the weight of each in its scores.

    The train split is the training set as the run saw it, replicates and all. Each distinct example
    is evaluated once and weighted by how often the run saw it, which gives exactly the scores of
    the set as seen. With ``per_class``, a class with more distinct examples than that is scored on
    a fixed random sample of them, reweighted so that the class keeps its share of the set: the
    scores are then estimates (a recall from 1,000 examples has a standard error under 0.016), at a
    fraction of the cost for the large classes. Classes marked in ``in_full`` (a mask over the
    classes: the minority classes, which the learning dynamics are about) are never sampled.
    """
    rows, seen = np.unique(training, return_counts=True)
    weights = seen.astype(np.float64)
    if not per_class:
        return rows, weights
    rng = np.random.default_rng(seed)
    row_labels = labels[rows]
    kept = []
    for label in np.unique(row_labels):
        members = np.flatnonzero(row_labels == label)
        if len(members) > per_class and not (in_full is not None and in_full[label]):
            chosen = np.sort(rng.choice(members, per_class, replace=False))
            weights[chosen] *= seen[members].sum() / seen[chosen].sum()
            members = chosen
        kept.append(members)
    kept = np.sort(np.concatenate(kept))
    return rows[kept], weights[kept]


def silhouette_subsample(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """A fixed, class-balanced subsample of a split, the same for every run and checkpoint."""
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:per_class] for label in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def score_run(manifest: dict, dataset, imbalanced: np.ndarray, identity: dict, training: np.ndarray, *,
              splits, device: str, silhouette_per_class: int, train_sample_per_class: int,
              logit_adjustment_taus=(), cache: dict | None = None, predictions_path=None,
              store_splits=()) -> list[dict]:
    """Score every checkpoint listed in a run manifest on the chosen splits.

    Each split's scores come plain (tau 0), thresholded (tau 1) and post-hoc logit-adjusted at each
    of ``logit_adjustment_taus`` (the config's ``scoring.logit_adjustment_taus``; see ``metrics``).

    ``train`` is the training set as the run saw it (``training``: its index file, replicates and
    all), each distinct example evaluated once and weighted, or a per-class sample of it
    (``train_sample_per_class``, see ``train_split_rows``); ``validation`` is skipped when the
    dataset has none. Each split is moved to the device once per job (``cache``, a dict shared by
    the runs of a job). With ``predictions_path``, the log-probabilities of the ``store_splits`` at
    every checkpoint are written there (HDF5, see ``write_predictions``), so that a run can be
    rescored without its checkpoints (``rescore``).
    """
    from . import models, rundir
    from .devices import resolve_device
    from .imbalance import class_counts_of, minority_mask
    from .predictions import write_predictions

    cache = {} if cache is None else cache
    torch_device = resolve_device(device)
    counts = class_counts_of(imbalanced, dataset.train_labels, dataset.n_classes)
    minority = minority_mask(counts)
    model = models.build(manifest["spec"]["model"], dataset.n_classes, dataset.image_shape,
                         manifest["spec"]["model_options"]).to(torch_device)
    if len(dataset.image_shape) > 1:  # images: channels-last, as in training (about 1.5x faster on CPU)
        model = model.to(memory_format=torch.channels_last)
    evaluated = {}  # split -> (log-probabilities of a model, labels, weights, pool rows of the train split)
    for split in splits:
        if split == "train":
            pool_rows, weights = train_split_rows(training, dataset.train_labels, train_sample_per_class, minority)
            evaluated[split] = (_evaluator(dataset, split, pool_rows, torch_device), dataset.train_labels[pool_rows],
                                weights, pool_rows)
        elif getattr(dataset, f"{split}_labels", None) is not None:
            if split not in cache:
                cache[split] = _evaluator(dataset, split, None, torch_device)
            evaluated[split] = (cache[split], getattr(dataset, f"{split}_labels"), None, None)
    probe = None  # test examples whose penultimate features are scored by their silhouette
    if silhouette_per_class and dataset.kind != "image_folder":
        if "probe" not in cache:
            chosen = silhouette_subsample(dataset.test_labels, silhouette_per_class)
            cache["probe"] = (_device_input(dataset.test_images[chosen], torch_device), dataset.test_labels[chosen])
        probe = cache["probe"]
    rows = []
    stored = {split: [] for split in store_splits if split in evaluated}
    for entry in manifest["checkpoints"]:
        rundir.load_checkpoint(entry, model, manifest["fingerprint"])
        if probe is not None:
            model.eval()
            with torch.no_grad():
                features = model.features(probe[0]).flatten(1).double().cpu().numpy()
            rows.extend(silhouette_rows(features, probe[1], minority, entry["iteration"], "test"))
        for split, (evaluate, labels, weights, _) in evaluated.items():
            log_probs = evaluate(model)
            if split in stored:
                stored[split].append(log_probs.astype(np.float32))
            rows.extend(score(log_probs, labels, counts, minority, entry["iteration"], split, weights,
                              taus=logit_adjustment_taus))
    if predictions_path is not None and stored:
        write_predictions(predictions_path, manifest, {
            split: {"log_probs": np.stack(values), "rows": evaluated[split][3], "weights": evaluated[split][2]}
            for split, values in stored.items()}, counts)
    return [{**identity, **row} for row in rows]


def _evaluator(dataset, split: str, rows: np.ndarray | None, device: torch.device, batch_size: int = 256):
    """A function model -> float64 log-probabilities on one split (its ``rows``, or all of it).

    In-memory splits are moved to the device once; image folders are decoded batch by batch with
    the test-time transform (resize, centre crop), as they do not fit in memory.
    """

    if dataset.kind == "image_folder":
        from .datasets import ImageFolderSubset

        subset = ImageFolderSubset(dataset, split, rows, train=False, resize=dataset.resize, crop=dataset.crop)
        loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False)

        @torch.no_grad()
        def evaluate(model):
            model.eval()
            logits = [model(images.to(device)).double() for images, _ in loader]
            return torch.log_softmax(torch.cat(logits), dim=1).cpu().numpy()

        return evaluate
    images = getattr(dataset, f"{split}_images")
    inputs = _device_input(images if rows is None else images[rows], device)
    # A CPU scores fastest in batches that stay in its caches (LeNet-5: about 1.5x faster at 256 than
    # at 2,048); a GPU wants large batches, as each is a handful of kernel launches.
    chunk = 256 if device.type == "cpu" else 4096
    return lambda model: log_probabilities(model, inputs, batch_size=chunk)


def _device_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    from . import models

    inputs = models.to_input(torch.from_numpy(images)).to(device)
    return inputs.contiguous(memory_format=torch.channels_last) if inputs.ndim == 4 else inputs


def diverged_row(diverged: dict) -> dict:
    """The score row of a run that diverged: metric ``diverged``, at the iteration it did, its loss then."""
    return {"iteration": diverged["iteration"], "split": "train", "thresholded": False, "tau": PLAIN_TAU,
            "metric": "diverged", "class": -1, "group": "all", "value": diverged["loss"]}


def write_rows(rows: list[dict], path) -> None:
    """Write score rows as CSV (the csv module: pandas would add its import to every scoring job)."""
    from .atomic import atomic_path

    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
