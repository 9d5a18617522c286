"""Scores of a checkpoint: ROC AUC, accuracy, per-class recall and loss, plain and thresholded.

Thresholding divides the network's outputs by the class priors of the imbalanced training set
(before any sampling), i.e. subtracts log-priors from log-probabilities. Renormalised, those
scores give a different one-vs-rest macro AUC when there are more than two classes, so the AUC of
the thresholded scores is reported as well. Everything is computed from float64 log-probabilities:
a float32 softmax saturates at 1.0 and creates ties that distort the AUC. One-vs-rest AUC depends
only on the ranking within each class's column, so it is computed on the log-scores directly.

The AUC is implemented here (Mann-Whitney U with average ranks for ties) rather than imported from
scikit-learn, whose import alone costs about a second per scoring job; the tests check it against
``sklearn.metrics.roc_auc_score``.
"""

from __future__ import annotations

import csv

import numpy as np
import torch

SCORE_COLUMNS = ("iteration", "split", "thresholded", "metric", "class", "group", "value")
SPLITS = ("test", "validation", "train")


@torch.inference_mode()
def log_probabilities(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 2048) -> np.ndarray:
    """float64 log-probabilities of ``inputs`` (N, C, H, W) under ``model`` in eval mode."""
    model.eval()
    logits = [model(inputs[start: start + batch_size]).double() for start in range(0, len(inputs), batch_size)]
    return torch.log_softmax(torch.cat(logits), dim=1).cpu().numpy()


def priors_from_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def log_normalise(log_scores: np.ndarray) -> np.ndarray:
    """Subtract each row's logsumexp, so that the rows exponentiate to probabilities."""
    peak = log_scores.max(axis=1, keepdims=True)
    return log_scores - (peak + np.log(np.exp(log_scores - peak).sum(axis=1, keepdims=True)))


def thresholded_log_scores(log_probs: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Outputs divided by the priors, renormalised: log(p / prior) - logsumexp(log(p / prior))."""
    return log_normalise(log_probs - np.log(priors))


def binary_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve: the probability that a positive outranks a negative, ties counting
    half; with ``weights``, each example counts as that many (the Mann-Whitney U, weighted)."""
    positive = np.asarray(positive, dtype=bool)
    weights = np.ones(len(positive)) if weights is None else np.asarray(weights, dtype=np.float64)
    positive_weight, negative_weight = weights[positive].sum(), weights[~positive].sum()
    if positive_weight <= 0 or negative_weight <= 0:
        raise ValueError("ROC AUC needs both positive and negative examples")
    values, tie_group = np.unique(scores, return_inverse=True)  # ascending; equal scores share a group
    positives = np.bincount(tie_group, weights=weights * positive, minlength=len(values))
    negatives = np.bincount(tie_group, weights=weights * ~positive, minlength=len(values))
    negatives_below = np.cumsum(negatives) - negatives
    return float((positives * (negatives_below + 0.5 * negatives)).sum() / (positive_weight * negative_weight))


def multiclass_auc(labels: np.ndarray, log_scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """One-vs-rest macro ROC AUC; for two classes, the binary AUC of class 1."""
    if log_scores.shape[1] == 2:
        return binary_auc(labels == 1, log_scores[:, 1] - log_scores[:, 0], weights)
    return float(np.mean([binary_auc(labels == k, log_scores[:, k], weights) for k in range(log_scores.shape[1])]))


def _class_means(values: np.ndarray, labels: np.ndarray, n_classes: int, weights: np.ndarray | None) -> np.ndarray:
    """The (weighted) mean of ``values`` over each class's examples; NaN for a class with none."""
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    totals = np.bincount(labels, weights=weights, minlength=n_classes)[:n_classes]
    sums = np.bincount(labels, weights=weights * values, minlength=n_classes)[:n_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, sums / np.where(totals > 0, totals, 1), np.nan)


def per_class_recall(labels: np.ndarray, predictions: np.ndarray, n_classes: int,
                     weights: np.ndarray | None = None) -> np.ndarray:
    return _class_means((predictions == labels).astype(np.float64), labels, n_classes, weights)


def _group_rows(common: dict, metric: str, per_class: np.ndarray, minority: np.ndarray) -> list[dict]:
    """One row per class, and the unweighted mean over each class group (the test set is balanced)."""
    rows = [{**common, "metric": metric, "class": label, "group": "minority" if minority[label] else "majority",
             "value": value} for label, value in enumerate(per_class)]
    for group, members in (("majority", ~minority), ("minority", minority)):
        values = per_class[members]
        values = values[~np.isnan(values)]
        if len(values):
            rows.append({**common, "metric": metric, "class": -1, "group": group, "value": float(values.mean())})
    return rows


def per_class_loss(labels: np.ndarray, log_probs: np.ndarray, n_classes: int,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """Mean cross-entropy of each class's examples (NaN for a class with none)."""
    return _class_means(-log_probs[np.arange(len(labels)), labels], labels, n_classes, weights)


def score(log_probs: np.ndarray, labels: np.ndarray, train_counts: np.ndarray, minority: np.ndarray,
          iteration: int, split: str = "test", weights: np.ndarray | None = None) -> list[dict]:
    """Tidy score rows for one checkpoint on one split.

    Per threshold variant: ROC AUC and accuracy over all classes, recall per class and its mean per
    class group; the cross-entropy loss (plain outputs only) overall, per class and per group.
    ``weights`` make each example count as that many (a training example the run saw several times,
    or one that stands for a sampled class: ``train_split_rows``).
    """
    n_classes = log_probs.shape[1]
    minority = np.asarray(minority, dtype=bool)
    priors = priors_from_counts(train_counts)
    rows = []
    for thresholded, log_scores in ((False, log_probs), (True, thresholded_log_scores(log_probs, priors))):
        predictions = log_scores.argmax(axis=1)
        common = {"iteration": iteration, "split": split, "thresholded": thresholded}
        if len(np.unique(labels)) > 1:
            rows.append({**common, "metric": "roc_auc", "class": -1, "group": "all",
                         "value": multiclass_auc(labels, log_scores, weights)})
        rows.append({**common, "metric": "accuracy", "class": -1, "group": "all",
                     "value": float(np.average(predictions == labels, weights=weights))})
        rows.extend(_group_rows(common, "recall", per_class_recall(labels, predictions, n_classes, weights), minority))
    common = {"iteration": iteration, "split": split, "thresholded": False}
    rows.append({**common, "metric": "loss", "class": -1, "group": "all",
                 "value": float(np.average(-log_probs[np.arange(len(labels)), labels], weights=weights))})
    rows.extend(_group_rows(common, "loss", per_class_loss(labels, log_probs, n_classes, weights), minority))
    return rows


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


def silhouette_samples(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example silhouette (b - a) / max(a, b) with Euclidean distances, as scikit-learn's
    ``silhouette_samples`` (0 for an example alone in its class); the tests check the two agree.
    Computed here because importing scikit-learn would add about a second to every scoring job."""
    squared = (features ** 2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * features @ features.T, 0.0))
    np.fill_diagonal(distances, 0.0)
    classes, members = np.unique(labels, return_inverse=True)
    onehot = np.eye(len(classes))[members]
    sizes = onehot.sum(axis=0)
    mean_to_class = distances @ onehot / sizes  # mean distance from each example to each class
    own_size = sizes[members]
    within = mean_to_class[np.arange(len(labels)), members] * own_size / np.maximum(own_size - 1, 1)
    mean_to_class[np.arange(len(labels)), members] = np.inf
    nearest = mean_to_class.min(axis=1)
    values = (nearest - within) / np.maximum(np.maximum(within, nearest), 1e-300)
    values[own_size == 1] = 0.0
    return values


def silhouette_rows(features: np.ndarray, labels: np.ndarray, minority: np.ndarray, iteration: int,
                    split: str = "test") -> list[dict]:
    """How well the penultimate features separate the classes: the silhouette, from -1 to 1.

    Overall, and averaged over the examples of the minority and of the majority classes, so the
    learning dynamics show when the minority classes get a representation of their own.
    """
    if len(np.unique(labels)) < 2:
        return []
    values = silhouette_samples(features.astype(np.float64), labels)
    common = {"iteration": iteration, "split": split, "thresholded": False, "metric": "silhouette", "class": -1}
    rows = [{**common, "group": "all", "value": float(values.mean())}]
    in_minority = np.asarray(minority, dtype=bool)[labels]
    for group, members in (("majority", ~in_minority), ("minority", in_minority)):
        if members.any():
            rows.append({**common, "group": group, "value": float(values[members].mean())})
    return rows


def silhouette_subsample(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """A fixed, class-balanced subsample of a split, the same for every run and checkpoint."""
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:per_class] for label in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def score_run(manifest: dict, dataset, imbalanced: np.ndarray, identity: dict, training: np.ndarray | None = None,
              splits=("test", "validation", "train"), device: str = "auto", silhouette_per_class: int = 0,
              cache: dict | None = None, predictions_path=None, store_splits=(),
              train_sample_per_class: int = 0) -> list[dict]:
    """Score every checkpoint listed in a run manifest on the chosen splits.

    ``train`` is the training set as the run saw it (``training``: its index file, replicates and
    all), each distinct example evaluated once and weighted, or a per-class sample of it
    (``train_sample_per_class``, see ``train_split_rows``); ``validation`` is skipped when the
    dataset has none. Each split is moved to the device once per job (``cache``, a dict shared by
    the runs of a job). With ``predictions_path``, the log-probabilities of the ``store_splits`` at
    every checkpoint are written there (HDF5, see ``write_predictions``), so that a run can be
    rescored without its checkpoints (``rescore``).
    """
    from . import models, training as training_module
    from .imbalance import class_counts_of, minority_mask

    cache = {} if cache is None else cache
    torch_device = training_module.resolve_device(device)
    counts = class_counts_of(imbalanced, dataset.train_labels, dataset.n_classes)
    minority = minority_mask(counts)
    model = models.build(manifest["spec"]["model"], dataset.n_classes, dataset.image_shape,
                         manifest["spec"].get("model_options")).to(torch_device)
    if len(dataset.image_shape) > 1:  # images: channels-last, as in training (about 1.5x faster on CPU)
        model = model.to(memory_format=torch.channels_last)
    evaluated = {}  # split -> (log-probabilities of a model, labels, weights, pool rows of the train split)
    for split in splits:
        if split == "train":
            if training is None:
                raise ValueError("scoring the train split needs the run's training index file")
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
        training_module.load_checkpoint(entry, model, manifest["fingerprint"])
        if probe is not None:
            model.eval()
            with torch.no_grad():
                features = model.features(probe[0]).flatten(1).double().cpu().numpy()
            rows.extend(silhouette_rows(features, probe[1], minority, entry["iteration"], "test"))
        for split, (evaluate, labels, weights, _) in evaluated.items():
            log_probs = evaluate(model)
            if split in stored:
                stored[split].append(log_probs.astype(np.float32))
            rows.extend(score(log_probs, labels, counts, minority, entry["iteration"], split, weights))
    if predictions_path is not None and stored:
        write_predictions(predictions_path, manifest, {
            split: {"log_probs": np.stack(values), "rows": evaluated[split][3], "weights": evaluated[split][2]}
            for split, values in stored.items()}, counts)
    return [{**identity, **row} for row in rows]


PREDICTIONS_FORMAT = 2  # 1 kept an expansion to the training set as seen instead of weights


def write_predictions(path, manifest: dict, splits: dict, train_counts: np.ndarray) -> None:
    """Per split: ``log_probs`` (checkpoints x examples x classes, float32) and, for the train split,
    ``rows`` (the pool rows evaluated) and ``weights`` (each one's weight in the scores, see
    ``train_split_rows``); attributes name the run and its checkpoints' iterations."""
    import h5py

    from .atomic import atomic_path

    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            handle.attrs["format"] = PREDICTIONS_FORMAT
            handle.attrs["fingerprint"] = manifest["fingerprint"]
            handle.attrs["iterations"] = [entry["iteration"] for entry in manifest["checkpoints"]]
            handle.attrs["train_counts"] = np.asarray(train_counts)
            for split, arrays in splits.items():
                group = handle.create_group(split)
                group.create_dataset("log_probs", data=arrays["log_probs"], compression="gzip", shuffle=True)
                for name in ("rows", "weights"):
                    if arrays[name] is not None:
                        group.create_dataset(name, data=arrays[name], compression="gzip")


def rescore(predictions_path, dataset, minority: np.ndarray, identity: dict) -> list[dict]:
    """Score rows again from stored predictions, without checkpoints or a network: what a new
    metric needs. Silhouettes need features, which are not stored, and are left out."""
    import h5py

    rows = []
    with h5py.File(predictions_path, "r") as handle:
        if handle.attrs.get("format") not in (1, PREDICTIONS_FORMAT):
            raise ValueError(f"{predictions_path}: not a predictions file of format 1 or {PREDICTIONS_FORMAT}")
        iterations = [int(value) for value in handle.attrs["iterations"]]
        counts = np.asarray(handle.attrs["train_counts"])
        for split in handle:
            group = handle[split]
            log_probs = group["log_probs"][...].astype(np.float64)
            weights, labels = None, getattr(dataset, f"{split}_labels")
            if "rows" in group:
                labels = dataset.train_labels[group["rows"][...]]
                weights = group["weights"][...] if "weights" in group else \
                    np.bincount(group["expansion"][...], minlength=len(labels)).astype(np.float64)  # format 1
            for position, iteration in enumerate(iterations):
                rows.extend(score(log_probs[position], labels, counts, minority, iteration, split, weights))
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


def write_rows(rows: list[dict], path) -> None:
    """Write score rows as CSV (the csv module: pandas would add its import to every scoring job)."""
    from .atomic import atomic_path

    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
