"""Scores of one checkpoint's outputs on one split: ROC AUC, accuracy, per-class recall and loss,
plain and thresholded, and the silhouette of features; numpy only, from float64 log-probabilities.

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

import numpy as np

SCORE_COLUMNS = ("iteration", "split", "thresholded", "metric", "class", "group", "value")


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
