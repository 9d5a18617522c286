import numpy as np
import pytest

from imbalance_study import imbalance, sampling

K = 10
LABELS = np.repeat(np.arange(K), 100)


def imbalanced(mu=0.5, rho=10, seed=1):
    return imbalance.imbalanced_indices(LABELS, imbalance.step(mu, rho), 100, seed)


def counts(indices):
    return imbalance.class_counts_of(indices, LABELS, K)


def test_oversampling_matches_the_largest_class_with_replicas_of_the_same_class():
    source = imbalanced()
    sampled = sampling.sample(source, LABELS, sampling.IndexFile("over", 1), seed=1, context="x")
    assert counts(sampled).tolist() == [100] * K
    assert set(sampled) == set(source)  # only replicas, nothing new
    assert len(sampled) == len(source) + 5 * 90


def test_undersampling_matches_the_smallest_class_with_a_subset():
    source = imbalanced()
    sampled = sampling.sample(source, LABELS, sampling.IndexFile("under", 1), seed=1, context="x")
    assert counts(sampled).tolist() == [10] * K
    assert set(sampled) <= set(source)
    assert len(set(sampled)) == len(sampled)


@pytest.mark.parametrize(("sampler", "ratio", "expected_min", "expected_max"), [
    ("over", 2, 50, 100),
    ("under", 2, 10, 20),
    ("over", 10, 10, 100),  # already at the ratio: unchanged
])
def test_partial_sampling_stops_at_the_ratio(sampler, ratio, expected_min, expected_max):
    sampled = sampling.sample(imbalanced(), LABELS, sampling.IndexFile(sampler, ratio), seed=1, context="x")
    assert counts(sampled).min() == expected_min
    assert counts(sampled).max() == expected_max


def test_sampling_is_deterministic_and_depends_on_seed():
    source = imbalanced()
    first = sampling.sample(source, LABELS, sampling.IndexFile("over", 1), seed=1, context="x")
    assert np.array_equal(first, sampling.sample(source, LABELS, sampling.IndexFile("over", 1), seed=1, context="x"))
    assert not np.array_equal(first, sampling.sample(source, LABELS, sampling.IndexFile("over", 1), seed=2, context="x"))


def test_index_file_names():
    assert sampling.IMBALANCED.name == "imbalanced" and sampling.IndexFile("none").name == "imbalanced"
    assert sampling.IndexFile("over").name == "over" and sampling.IndexFile("over", 10).name == "over-ratio10"
    assert sampling.IndexFile("under", 2.5).name == "under-ratio2.5"
    assert sampling.IndexFile("under", 1e6).name == "under-ratio1000000"
    with pytest.raises(sampling.SamplingError, match="unknown sampler 'smote'"):
        sampling.IndexFile("smote")
    with pytest.raises(sampling.SamplingError, match="at least 1"):
        sampling.IndexFile("over", 0.5)
