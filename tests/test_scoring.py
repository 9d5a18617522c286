import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score,
                             silhouette_samples)

from imbalance_study import metrics, scoring


def random_log_probs(n=400, k=5, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n // k)
    logits = rng.normal(size=(n, k)) * scale
    logits[np.arange(n), labels] += 2.0
    return labels, log_softmax(logits, axis=1)


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_auc_matches_scikit_learn(seed):
    labels, log_probs = random_log_probs(seed=seed)
    expected = roc_auc_score(labels, softmax(log_probs, axis=1), multi_class="ovr", average="macro")
    assert metrics.multiclass_auc(labels, log_probs) == pytest.approx(expected, abs=1e-12)


def test_binary_auc_with_ties_matches_scikit_learn():
    positive = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    scores = np.array([0.9, 0.9, 0.5, 0.5, 0.5, 0.1, 0.8, 0.2])
    assert metrics.binary_auc(positive, scores) == pytest.approx(roc_auc_score(positive, scores))
    assert metrics.binary_auc(positive, positive.astype(float)) == 1.0


def test_two_class_auc_is_the_binary_auc():
    labels, log_probs = random_log_probs(k=2, seed=3)
    expected = roc_auc_score(labels, softmax(log_probs, axis=1)[:, 1])
    assert metrics.multiclass_auc(labels, log_probs) == pytest.approx(expected)


def test_float64_log_probabilities_avoid_float32_saturation_ties():
    # Confident logits: a float32 softmax rounds both to exactly 1.0 and ties them.
    logits = np.array([[40.0, 0.0], [30.0, 0.0]])
    assert np.all(softmax(logits.astype(np.float32), axis=1)[:, 0] == np.float32(1.0))
    log_probs = log_softmax(logits, axis=1)
    assert log_probs[0, 0] > log_probs[1, 0]


def test_thresholding_divides_by_priors_and_renormalises():
    log_probs = np.log(np.array([[0.6, 0.3, 0.1], [0.5, 0.45, 0.05]]))
    priors = np.array([0.8, 0.1, 0.1])
    adjusted = metrics.thresholded_log_scores(log_probs, priors)
    expected = np.array([[0.6 / 0.8, 0.3 / 0.1, 0.1 / 0.1], [0.5 / 0.8, 0.45 / 0.1, 0.05 / 0.1]])
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.exp(adjusted), expected)
    assert adjusted.argmax(axis=1).tolist() == [1, 1]


def test_score_rows_known_case():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array([[.7, .2, .1], [.6, .25, .15], [.5, .4, .1], [.2, .7, .1], [.5, .1, .4], [.1, .1, .8]])
    counts = np.array([100, 50, 50])
    rows = metrics.score(np.log(probabilities), labels, counts, minority=counts < 100, iteration=7)
    table = {(r["thresholded"], r["metric"], r["class"]): r["value"] for r in rows}
    assert table[(False, "accuracy", -1)] == pytest.approx(4 / 6)
    assert [table[(False, "recall", k)] for k in range(3)] == [1.0, 0.5, 0.5]
    # Dividing by the priors (.5, .25, .25) moves both misclassified minority examples to their class.
    assert table[(True, "accuracy", -1)] == pytest.approx(1.0)
    assert table[(False, "roc_auc", -1)] == pytest.approx(
        roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    groups = {r["class"]: r["group"] for r in rows if r["metric"] == "recall" and r["class"] >= 0}
    assert groups == {0: "majority", 1: "minority", 2: "minority"}
    group_means = {(r["thresholded"], r["group"]): r["value"] for r in rows if r["metric"] == "recall" and r["class"] < 0}
    assert group_means[(False, "majority")] == 1.0 and group_means[(False, "minority")] == 0.5
    assert group_means[(True, "minority")] == 1.0
    losses = {(r["class"], r["group"]): r["value"] for r in rows if r["metric"] == "loss"}
    assert losses[(-1, "all")] == pytest.approx(-np.mean(np.log(probabilities[np.arange(6), labels])))
    assert losses[(1, "minority")] == pytest.approx(-np.mean(np.log([.4, .7])))
    assert losses[(-1, "minority")] == pytest.approx(np.mean([-np.mean(np.log([.4, .7])), -np.mean(np.log([.4, .8]))]))


def test_silhouette_is_near_one_for_separated_classes_and_near_zero_for_shuffled_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    features = rng.normal(scale=0.05, size=(120, 8)) + np.eye(8)[labels] * 10
    minority = np.array([False, True, True])
    separated = {r["group"]: r["value"] for r in metrics.silhouette_rows(features, labels, minority, 5)}
    assert separated["all"] > 0.95 and separated["minority"] > 0.95 and separated["majority"] > 0.95
    shuffled = rng.permutation(labels)
    noise = rng.normal(size=(120, 8))
    mixed = {r["group"]: r["value"] for r in metrics.silhouette_rows(noise, shuffled, minority, 5)}
    assert abs(mixed["all"]) < 0.1


def test_silhouette_groups_split_the_examples_by_class_group():
    labels = np.array([0, 0, 1, 1])
    features = np.array([[0.0], [0.1], [5.0], [9.0]])
    rows = {r["group"]: r["value"] for r in metrics.silhouette_rows(features, labels, np.array([False, True]), 1)}
    # By hand: a = mean distance within the own class, b = to the other class; (b - a) / max(a, b).
    a = np.array([0.1, 0.1, 4.0, 4.0])
    b = np.array([(5 + 9) / 2, (4.9 + 8.9) / 2, (5 + 4.9) / 2, (9 + 8.9) / 2])
    by_hand = (b - a) / np.maximum(a, b)
    assert rows["majority"] == pytest.approx(by_hand[:2].mean(), abs=1e-12)
    assert rows["minority"] == pytest.approx(by_hand[2:].mean(), abs=1e-12)
    assert rows["all"] == pytest.approx(by_hand.mean(), abs=1e-12)
    assert {row["tau"] for row in metrics.silhouette_rows(features, labels, np.array([False, True]), 1)} == {0.0}


def test_a_probe_of_one_example_per_class_has_silhouette_zero():
    """Alone in its class, an example's silhouette is 0 by definition (scikit-learn refuses the case)."""
    features, labels = np.array([[0.0], [1.0], [5.0]]), np.array([0, 1, 2])
    rows = metrics.silhouette_rows(features, labels, np.array([False, True, True]), 1)
    assert {row["group"]: row["value"] for row in rows} == {"all": 0.0, "majority": 0.0, "minority": 0.0}


def test_silhouette_subsample_is_fixed_and_balanced():
    labels = np.repeat(np.arange(4), 30)
    first, second = scoring.silhouette_subsample(labels, 10), scoring.silhouette_subsample(labels, 10)
    assert np.array_equal(first, second) and np.bincount(labels[first]).tolist() == [10] * 4


@pytest.mark.parametrize("seed", range(3))
def test_silhouette_matches_a_float64_reference(seed):
    """Against the definition, with every pairwise distance by scipy (a class of one example: 0)."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=150)
    labels[0] = 5  # a class of one example
    features = rng.normal(size=(150, 6)) + labels[:, None] * 0.5
    distances = cdist(features, features)
    expected = np.zeros(len(labels))
    for i, label in enumerate(labels):
        own = (labels == label) & (np.arange(len(labels)) != i)
        if own.any():
            a = distances[i, own].mean()
            b = min(distances[i, labels == other].mean() for other in np.unique(labels) if other != label)
            expected[i] = (b - a) / max(a, b)
    minority = np.array([False, False, True, True, False, True])
    rows = {r["group"]: r["value"] for r in metrics.silhouette_rows(features, labels, minority, 3)}
    in_minority = minority[labels]
    # Means of 150 distances of order 1: float64 rounding stays far below 1e-12.
    assert rows["all"] == pytest.approx(expected.mean(), abs=1e-12)
    assert rows["minority"] == pytest.approx(expected[in_minority].mean(), abs=1e-12)
    assert rows["majority"] == pytest.approx(expected[~in_minority].mean(), abs=1e-12)


def test_weighted_auc_matches_scikit_learn_sample_weight_with_ties():
    rng = np.random.default_rng(5)
    positive = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + positive, 1)  # rounded: many ties
    weights = rng.uniform(0.1, 5.0, size=300)
    assert metrics.binary_auc(positive, scores, weights) == pytest.approx(
        roc_auc_score(positive, scores, sample_weight=weights), abs=1e-12)
    labels, log_probs = random_log_probs(seed=2)
    weights = rng.uniform(0.1, 5.0, size=len(labels))
    expected = roc_auc_score(labels, softmax(log_probs, axis=1), multi_class="ovr", average="macro",
                             sample_weight=weights)
    assert metrics.multiclass_auc(labels, log_probs, weights) == pytest.approx(expected, abs=1e-12)


def test_counts_as_weights_give_the_scores_of_the_replicated_set():
    labels, log_probs = random_log_probs(n=200, k=4, seed=7)
    seen = np.random.default_rng(1).integers(1, 6, size=len(labels))  # as an oversampled set repeats rows
    replicated = np.repeat(np.arange(len(labels)), seen)
    counts, minority = np.array([100, 100, 10, 10]), np.array([False, False, True, True])
    expected = metrics.score(log_probs[replicated], labels[replicated], counts, minority, 3, "train", taus=(0.5,))
    weighted = metrics.score(log_probs, labels, counts, minority, 3, "train", weights=seen.astype(float), taus=(0.5,))
    assert [(row["metric"], row["tau"]) for row in weighted] == [(row["metric"], row["tau"]) for row in expected]
    assert {"balanced_accuracy", "macro_f1", "g_mean"} <= {row["metric"] for row in weighted}
    np.testing.assert_allclose([row["value"] for row in weighted], [row["value"] for row in expected], rtol=1e-12)


def test_train_split_rows_are_the_distinct_rows_weighted_by_how_often_they_were_seen():
    labels = np.array([0, 0, 0, 1, 1, 2])
    training = np.array([4, 0, 4, 4, 1, 5, 0])
    rows, weights = scoring.train_split_rows(training, labels)
    assert rows.tolist() == [0, 1, 4, 5] and weights.tolist() == [2.0, 1.0, 3.0, 1.0]


def test_a_per_class_sample_caps_the_large_classes_and_keeps_each_class_share():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [5000, 3000, 50])
    minority_rows = np.flatnonzero(labels == 2)
    training = np.concatenate([np.flatnonzero(labels < 2), np.repeat(minority_rows, 20)])  # minority oversampled
    rows, weights = scoring.train_split_rows(training, labels, per_class=400)
    assert np.bincount(labels[rows]).tolist() == [400, 400, 50]
    seen = np.bincount(labels[training])
    np.testing.assert_allclose(np.bincount(labels[rows], weights=weights), seen)  # each class keeps its share
    assert set(rows[labels[rows] == 2]) == set(minority_rows)  # a small class in full
    again_rows, again_weights = scoring.train_split_rows(training, labels, per_class=400)
    assert np.array_equal(rows, again_rows) and np.array_equal(weights, again_weights)  # fixed sample
    # The sampled scores estimate the exact ones: a model right on 90% of class 0, 60% of class 1.
    log_probs = np.log(np.full((len(labels), 3), 0.1))
    right = np.where(labels == 0, rng.random(len(labels)) < 0.9, rng.random(len(labels)) < 0.6)
    predicted = np.where(right, labels, (labels + 1) % 3)
    log_probs[np.arange(len(labels)), predicted] = np.log(0.8)
    exact_rows, exact_weights = scoring.train_split_rows(training, labels)
    minority = np.array([False, False, True])

    def table(chosen, chosen_weights):
        return {(r["thresholded"], r["metric"], r["class"], r["group"]): r["value"] for r in metrics.score(
            log_probs[chosen], labels[chosen], seen, minority, 1, "train", weights=chosen_weights)}

    exact, sampled = table(exact_rows, exact_weights), table(rows, weights)
    assert exact.keys() == sampled.keys()
    for key, value in exact.items():
        assert sampled[key] == pytest.approx(value, abs=0.05), key
    assert sampled[(False, "recall", 2, "minority")] == exact[(False, "recall", 2, "minority")]


def test_classes_marked_in_full_are_never_sampled():
    labels = np.repeat(np.arange(3), [600, 500, 400])
    training = np.arange(len(labels))
    rows, weights = scoring.train_split_rows(training, labels, per_class=100, in_full=np.array([False, True, False]))
    assert np.bincount(labels[rows]).tolist() == [100, 500, 100]
    assert np.all(weights[labels[rows] == 1] == 1.0)
    np.testing.assert_allclose(np.bincount(labels[rows], weights=weights), [600, 500, 400])


# --- the metrics imbalance work reports --------------------------------------------------------------

def random_predictions(n=600, k=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    right = rng.random(n) < np.linspace(0.9, 0.2, k)[labels]  # recall falls from class 0 to class k-1
    predictions = np.where(right, labels, rng.integers(0, k, size=n))
    return labels, predictions, rng.uniform(0.1, 5.0, size=n)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_whole_set_scores_match_scikit_learn(seed, weighted):
    labels, predictions, weights = random_predictions(seed=seed)
    weights = weights if weighted else None
    scores, recall = metrics.decision_scores(labels, predictions, 6, weights)
    expected_recall = recall_score(labels, predictions, average=None, sample_weight=weights)
    # Sums of a few hundred weights of order 1: float64 rounding far below 1e-12.
    np.testing.assert_allclose(recall, expected_recall, atol=1e-12)
    assert scores["accuracy"] == pytest.approx(accuracy_score(labels, predictions, sample_weight=weights), abs=1e-12)
    assert scores["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(labels, predictions, sample_weight=weights), abs=1e-12)
    assert scores["macro_f1"] == pytest.approx(
        f1_score(labels, predictions, average="macro", sample_weight=weights), abs=1e-12)
    assert scores["g_mean"] == pytest.approx(np.prod(expected_recall) ** (1 / 6), abs=1e-12)


def test_a_class_never_predicted_has_f1_zero_and_makes_the_geometric_mean_zero():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 1, 0])  # class 2 never predicted
    scores, recall = metrics.decision_scores(labels, predictions, 3)
    assert recall.tolist() == [0.5, 1.0, 0.0]
    assert scores["g_mean"] == 0.0
    assert scores["balanced_accuracy"] == pytest.approx(0.5)
    assert scores["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro", zero_division=0.0))
    # Per class, F1 = 2 hits / (true + predicted): class 0 1 hit of 2 true, 3 predicted; class 1 2 of 2, 4.
    assert scores["macro_f1"] == pytest.approx((2 * 1 / (2 + 3) + 2 * 2 / (2 + 4) + 0) / 3)


def test_scores_are_over_the_classes_the_split_has():
    """A class the split lacks (recall undefined) is left out of the means, as in scikit-learn."""
    labels = np.array([0, 0, 1, 1])
    predictions = np.array([0, 2, 1, 1])  # class 2: predicted once, never true
    scores, recall = metrics.decision_scores(labels, predictions, 3)
    assert np.isnan(recall[2])
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        assert scores["balanced_accuracy"] == pytest.approx(0.75) == balanced_accuracy_score(labels, predictions)
    assert scores["macro_f1"] == pytest.approx(f1_score(labels, predictions, labels=[0, 1], average="macro"))
    assert scores["g_mean"] == pytest.approx(np.sqrt(0.5))


# --- post-hoc logit adjustment ----------------------------------------------------------------------

def test_logit_adjustment_of_log_probabilities_is_that_of_the_logits():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 4)) * 5
    priors = np.array([0.7, 0.2, 0.05, 0.05])
    log_probs = log_softmax(logits, axis=1)
    for tau in (0.0, 0.5, 1.0, 2.0):
        expected = log_softmax(logits - tau * np.log(priors), axis=1)  # Menon et al.: on the logits
        # Values of order 10: float64 rounding of a few operations stays below 1e-12.
        np.testing.assert_allclose(metrics.logit_adjusted_log_scores(log_probs, priors, tau), expected, atol=1e-12)
    np.testing.assert_allclose(metrics.logit_adjusted_log_scores(log_probs, priors, 0.0), log_probs, atol=1e-12)
    np.testing.assert_array_equal(metrics.logit_adjusted_log_scores(log_probs, priors, 1.0),
                                  metrics.thresholded_log_scores(log_probs, priors))


def test_the_taus_scored_are_plain_thresholded_and_the_grid():
    assert metrics.adjustment_taus() == [0.0, 1.0]
    assert metrics.adjustment_taus([0.5, 1, 2.0, 0, 0.5]) == [0.0, 1.0, 0.5, 2.0]


def test_tau_one_rows_are_thresholding_and_tau_zero_rows_the_plain_outputs():
    """Scored at tau 0, 1 and a grid, the rows of tau 0 are those of the plain outputs as they are,
    and the rows of tau 1 those of the outputs divided by the priors, computed here independently."""
    labels, log_probs = random_log_probs(n=300, k=4, seed=11)
    counts = np.array([400, 100, 20, 20])
    minority, priors = counts < 100, counts / counts.sum()
    rows = metrics.score(log_probs, labels, counts, minority, 9, taus=(0.5, 2.0))
    by_tau = {}
    for row in rows:
        by_tau.setdefault(row["tau"], {})[(row["metric"], row["class"], row["group"])] = row["value"]
        assert row["thresholded"] == (row["tau"] != 0)
    assert set(by_tau) == {0.0, 1.0, 0.5, 2.0}
    divided = np.exp(log_probs) / priors
    divided /= divided.sum(axis=1, keepdims=True)
    # Scored as plain outputs, the divided probabilities give the thresholded rows.
    as_plain = {(r["metric"], r["class"], r["group"]): r["value"]
                for r in metrics.score(np.log(divided), labels, counts, minority, 9) if r["tau"] == 0.0}
    without_loss = {key: value for key, value in as_plain.items() if key[0] != "loss"}
    assert by_tau[1.0].keys() == without_loss.keys()
    for key, value in without_loss.items():
        assert by_tau[1.0][key] == pytest.approx(value, abs=1e-12), key
    assert by_tau[1.0][("accuracy", -1, "all")] > by_tau[0.0][("accuracy", -1, "all")] - 0.2  # not degenerate
    plain = {(r["metric"], r["class"], r["group"]): r["value"]
             for r in metrics.score(log_probs, labels, counts, minority, 9) if r["tau"] == 0.0}
    assert by_tau[0.0] == plain
    # Larger tau moves more decisions to the rare classes: their recall does not fall.
    minority_recall = [by_tau[tau][("recall", -1, "minority")] for tau in (0.0, 0.5, 1.0, 2.0)]
    assert minority_recall == sorted(minority_recall)
    assert {key[0] for key in by_tau[2.0]} == {"roc_auc", "accuracy", "balanced_accuracy", "macro_f1", "g_mean",
                                              "recall"}


def test_balanced_accuracy_is_the_mean_of_the_recall_rows():
    labels, log_probs = random_log_probs(n=200, k=5, seed=4)
    counts = np.array([100, 100, 10, 10, 10])
    rows = metrics.score(log_probs, labels, counts, counts < 100, 1, taus=(2.0,))
    for tau in (0.0, 1.0, 2.0):
        recall = [r["value"] for r in rows if r["tau"] == tau and r["metric"] == "recall" and r["class"] >= 0]
        (balanced,) = [r["value"] for r in rows if r["tau"] == tau and r["metric"] == "balanced_accuracy"]
        assert balanced == pytest.approx(np.mean(recall), abs=1e-12)


def test_a_job_and_a_rescore_of_its_predictions_give_the_same_logit_adjusted_rows(tmp_path):
    """The tau grid is scored in the scoring pass, and again without the network from predictions.h5."""
    from imbalance_study import datasets, imbalance, predictions

    from .test_training import spec, tiny_data, train

    images, labels = tiny_data()
    imbalanced = np.concatenate([np.flatnonzero(labels == 0), np.flatnonzero(labels > 0)[::4]])  # class 0 the majority
    dataset = datasets.Dataset("toy", images, labels, images, labels, ["a", "b", "c"])
    manifest = train(spec(), images, labels, imbalanced, tmp_path / "run")
    taus = [0.5, 2.0]
    written = scoring.score_run(manifest, dataset, imbalanced, {"run": 1}, imbalanced, splits=["test", "train"],
                                device="cpu", silhouette_per_class=0, train_sample_per_class=0,
                                logit_adjustment_taus=taus, predictions_path=tmp_path / "predictions.h5",
                                store_splits=["test", "train"])
    minority = imbalance.minority_mask(imbalance.class_counts_of(imbalanced, labels, 3))
    rescored = predictions.rescore(tmp_path / "predictions.h5", dataset, minority, {"run": 1}, taus=taus)

    def by_key(rows):
        return {(r["iteration"], r["split"], r["tau"], r["thresholded"], r["metric"], r["class"], r["group"]):
                r["value"] for r in rows}

    written, rescored = by_key(written), by_key(rescored)
    assert written.keys() == rescored.keys()
    assert {key[2] for key in written} == {0.0, 1.0, 0.5, 2.0}
    assert {key[4] for key in written if key[2] == 2.0} >= {"roc_auc", "balanced_accuracy", "macro_f1", "g_mean"}
    # Stored as float32: log-probabilities of magnitude < 20 keep about 1e-6 of absolute precision.
    for key, value in written.items():
        assert rescored[key] == pytest.approx(value, abs=1e-5), key
