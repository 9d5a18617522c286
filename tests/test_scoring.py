import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.metrics import roc_auc_score

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
    from sklearn.metrics import silhouette_samples
    values = silhouette_samples(features, labels)
    np.testing.assert_allclose(metrics.silhouette_samples(features, labels), values, atol=1e-12)
    assert rows["majority"] == pytest.approx(values[:2].mean()) and rows["minority"] == pytest.approx(values[2:].mean())


def test_silhouette_subsample_is_fixed_and_balanced():
    labels = np.repeat(np.arange(4), 30)
    first, second = scoring.silhouette_subsample(labels, 10), scoring.silhouette_subsample(labels, 10)
    assert np.array_equal(first, second) and np.bincount(labels[first]).tolist() == [10] * 4


@pytest.mark.parametrize("seed", range(3))
def test_silhouette_matches_scikit_learn(seed):
    from sklearn.metrics import silhouette_samples

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=150)
    labels[0] = 5  # a class of one example
    features = rng.normal(size=(150, 6)) + labels[:, None] * 0.5
    np.testing.assert_allclose(metrics.silhouette_samples(features, labels), silhouette_samples(features, labels),
                               atol=1e-9)


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
    expected = metrics.score(log_probs[replicated], labels[replicated], counts, minority, 3, "train")
    weighted = metrics.score(log_probs, labels, counts, minority, 3, "train", weights=seen.astype(float))
    assert [row["metric"] for row in weighted] == [row["metric"] for row in expected]
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
