"""Scores of one checkpoint's outputs on one split, from float64 log-probabilities: ROC AUC,
accuracy, balanced accuracy, macro-F1, the geometric mean of recalls (``g_mean``), per-class recall
and loss, for the plain outputs and the post-hoc logit-adjusted ones; and the silhouette of features.

**Logit adjustment and thresholding.** Post-hoc logit adjustment (Menon et al., ICLR 2021) scores
``log_softmax(z - tau * log prior)``, the priors being the class shares of the imbalanced training
set before any sampling. ``tau = 0`` is the plain output; ``tau = 1`` is the paper's thresholding
(the outputs divided by the priors, renormalised). Both are always scored; the config's
``scoring.logit_adjustment_taus`` adds a grid of other taus, computed from the log-probabilities
already in hand (no retraining; ``predictions.rescore`` gives them from stored predictions too).
Log-probabilities differ from the logits by a constant per row, which the softmax removes, so
adjusting either gives the same scores.

**The ``tau`` and ``thresholded`` columns.** Every row says its ``tau``; ``thresholded`` is True for
every adjusted row (``tau != 0``: its decision thresholds were moved by the priors), False for the
plain ones. So every reader of plain rows (``not thresholded``: model selection, the learning
dynamics, most figures) reads exactly what it read before the grid, with no code; only readers of
thresholded rows must also say which tau, and the figures do that in one place
(``figures.table.at_taus``: tau 0 and 1). A "method + post-hoc LA (tau t)" is the rows of that
method with ``tau == t`` (``figures.table._scores(..., thresholded=True, taus=[t])``). The loss is
scored on the plain outputs only; silhouettes have tau 0.

Renormalised adjusted scores give a different one-vs-rest macro AUC when there are more than two
classes, so each variant has its own AUC. Everything is computed from float64 log-probabilities: a
float32 softmax saturates at 1.0 and creates ties that distort the AUC.

**Library or hand-written** (measured 2026-12-02 on this project's 2 CPU cores, 10 classes, the best
of 5 calls). Importing ``sklearn.metrics`` costs a scoring job about 1.1 s once (a job scores up to
``engine.runs_per_job`` runs), so the silhouette is scikit-learn's: as fast per call as the
hand-written one it replaced (5.5 vs 5.4 ms for 500 examples x 84 features, 103 vs 130 ms for 2,000
x 500). Per call, though, the library pays its input checks: one-vs-rest ``roc_auc_score`` took 12.7
ms against 0.7 ms for 500 examples and 34 vs 4.5 ms for 10,000; ``balanced_accuracy_score`` and
``f1_score`` 1.3-3.7 and 2.4-6.2 ms against microseconds for one weighted confusion matrix
(``np.bincount``). Each is called for every variant (five with the default tau grid), split and
checkpoint: 360 calls in a default-study job (6 runs x 6 checkpoints x 2 splits), about 4.6 s for
the AUC and 1.3 s for the other two, against 23 s of training. So the AUC stays the Mann-Whitney U
with average ranks for ties, and accuracy, per-class recall, balanced accuracy, macro-F1 and the
geometric mean come from one confusion matrix per variant; the tests check each against
scikit-learn's ``roc_auc_score``, ``balanced_accuracy_score``, ``f1_score``, ``recall_score`` and
``accuracy_score`` with ``sample_weight``. imbalanced-learn's ``geometric_mean_score`` is the same
geometric mean of recalls, for 0.5 s more of imports per job and two more packages: not used.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.metrics import silhouette_samples

SCORE_COLUMNS = ("iteration", "split", "thresholded", "tau", "metric", "class", "group", "value")
PLAIN_TAU, THRESHOLDED_TAU = 0.0, 1.0


def priors_from_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def logit_adjusted_log_scores(log_probs: np.ndarray, priors: np.ndarray, tau: float) -> np.ndarray:
    """Post-hoc logit adjustment: ``log_softmax(log_probs - tau * log(priors))``, row by row."""
    return log_softmax(log_probs - tau * np.log(priors), axis=1)


def thresholded_log_scores(log_probs: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Outputs divided by the priors, renormalised: logit adjustment with tau 1."""
    return logit_adjusted_log_scores(log_probs, priors, THRESHOLDED_TAU)


def adjustment_taus(grid=()) -> list[float]:
    """The taus scored: 0 (plain) and 1 (thresholded) always, then each of ``grid`` not among them."""
    taus = [PLAIN_TAU, THRESHOLDED_TAU]
    for tau in grid:
        if float(tau) not in taus:
            taus.append(float(tau))
    return taus


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
    """One-vs-rest macro ROC AUC on the log-scores (each column's ranking is all it depends on); for
    two classes, the binary AUC of class 1."""
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


def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int,
              weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted confusion matrix: rows the true classes, columns the predicted ones."""
    return np.bincount(labels * n_classes + predictions, weights=weights,
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_recall(labels: np.ndarray, predictions: np.ndarray, n_classes: int,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Each class's recall (NaN for a class the split does not have)."""
    return _recall(confusion(labels, predictions, n_classes, weights))


def _recall(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.where(totals > 0, totals, 1), np.nan)


def per_class_loss(labels: np.ndarray, log_probs: np.ndarray, n_classes: int,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """Mean cross-entropy of each class's examples (NaN for a class with none)."""
    return _class_means(-log_probs[np.arange(len(labels)), labels], labels, n_classes, weights)


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


def decision_scores(labels: np.ndarray, predictions: np.ndarray, n_classes: int,
                    weights: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Whole-set scores of one variant's predictions, and its recall per class (NaN for a class the
    split lacks), all from one weighted confusion matrix: accuracy, balanced accuracy (the mean
    recall), macro-F1 and the geometric mean of the recalls, the last three over the classes the
    split has (as scikit-learn's ``balanced_accuracy_score`` and imbalanced-learn's
    ``geometric_mean_score``; ``f1_score`` given those classes as ``labels``)."""
    matrix = confusion(labels, predictions, n_classes, weights)
    recall = _recall(matrix)
    present = matrix.sum(axis=1) > 0
    hits, true, predicted = np.diag(matrix)[present], matrix.sum(axis=1)[present], matrix.sum(axis=0)[present]
    # F1 = 2PR / (P + R) = 2 hits / (true + predicted); 0 for a class never predicted (its recall is 0).
    # The geometric mean written out: scipy.stats.gmean's argument handling costs 0.27 ms a call.
    with np.errstate(divide="ignore"):  # a recall of 0 makes the geometric mean exp(-inf) = 0
        g_mean = np.exp(np.mean(np.log(recall[present])))
    return {"accuracy": float(np.trace(matrix) / matrix.sum()), "balanced_accuracy": float(recall[present].mean()),
            "macro_f1": float(np.mean(2 * hits / (true + predicted))), "g_mean": float(g_mean)}, recall


def score(log_probs: np.ndarray, labels: np.ndarray, train_counts: np.ndarray, minority: np.ndarray,
          iteration: int, split: str = "test", weights: np.ndarray | None = None, *, taus=()) -> list[dict]:
    """Tidy score rows for one checkpoint on one split.

    Per variant (tau 0, tau 1 and each of ``taus``, see ``adjustment_taus``): ``decision_scores``
    and recall per class and its mean per class group; the cross-entropy loss (plain outputs only)
    overall, per class and per group. ``weights`` make each example count as that many (a training
    example the run saw several times, or one that stands for a sampled class: ``train_split_rows``).
    """
    n_classes = log_probs.shape[1]
    minority = np.asarray(minority, dtype=bool)
    priors = priors_from_counts(train_counts)
    rows = []
    for tau in adjustment_taus(taus):
        # The plain rows use the log-probabilities as they are, bit for bit.
        log_scores = log_probs if tau == PLAIN_TAU else logit_adjusted_log_scores(log_probs, priors, tau)
        common = {"iteration": iteration, "split": split, "thresholded": tau != PLAIN_TAU, "tau": tau}
        if len(np.unique(labels)) > 1:
            rows.append({**common, "metric": "roc_auc", "class": -1, "group": "all",
                         "value": multiclass_auc(labels, log_scores, weights)})
        whole_set, recall = decision_scores(labels, log_scores.argmax(axis=1), n_classes, weights)
        rows.extend({**common, "metric": metric, "class": -1, "group": "all", "value": value}
                    for metric, value in whole_set.items())
        rows.extend(_group_rows(common, "recall", recall, minority))
    common = {"iteration": iteration, "split": split, "thresholded": False, "tau": PLAIN_TAU}
    rows.append({**common, "metric": "loss", "class": -1, "group": "all",
                 "value": float(np.average(-log_probs[np.arange(len(labels)), labels], weights=weights))})
    rows.extend(_group_rows(common, "loss", per_class_loss(labels, log_probs, n_classes, weights), minority))
    return rows


def silhouette_rows(features: np.ndarray, labels: np.ndarray, minority: np.ndarray, iteration: int,
                    split: str = "test") -> list[dict]:
    """How well the penultimate features separate the classes: the silhouette, from -1 to 1.

    Overall, and averaged over the examples of the minority and of the majority classes, so the
    learning dynamics show when the minority classes get a representation of their own.
    """
    n_classes = len(np.unique(labels))
    if n_classes < 2:
        return []
    if n_classes == len(labels):  # every example alone in its class: silhouette 0 (scikit-learn refuses it)
        values = np.zeros(len(labels))
    else:
        values = silhouette_samples(np.asarray(features, dtype=np.float64), labels)
    common = {"iteration": iteration, "split": split, "thresholded": False, "tau": PLAIN_TAU,
              "metric": "silhouette", "class": -1}
    rows = [{**common, "group": "all", "value": float(values.mean())}]
    in_minority = np.asarray(minority, dtype=bool)[labels]
    for group, members in (("majority", ~in_minority), ("minority", in_minority)):
        if members.any():
            rows.append({**common, "group": group, "value": float(values[members].mean())})
    return rows
