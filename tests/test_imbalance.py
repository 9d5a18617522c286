import numpy as np
import pytest

from imbalance_study import imbalance
from imbalance_study.atomic import write_npy

K = 10


def pool(per_class=100):
    return np.repeat(np.arange(K), per_class)


@pytest.mark.parametrize(("mu", "rho", "cap", "minority_count"), [
    (0.2, 10, 100, 10),
    (0.5, 3, 100, 33),   # rho does not divide the cap: floor keeps the ratio at or above rho
    (0.8, 7, 120, 17),
    (0.9, 1000, 100, 1),  # never fewer than one example
    (0.5, 1, 100, 100),
])
def test_step_counts(mu, rho, cap, minority_count):
    profile = imbalance.step(mu, rho)
    indices = imbalance.imbalanced_indices(pool(cap), profile, cap, seed=3)
    counts = imbalance.class_counts_of(indices, pool(cap), K)
    n_minority = round(mu * K)
    assert sorted(counts.tolist()) == sorted([minority_count] * n_minority + [cap] * (K - n_minority))
    assert cap / counts.min() >= rho or counts.min() == 1


def test_minority_classes_random_per_seed_and_lowest():
    labels = pool()
    profile = imbalance.step(0.3, 10)
    chosen = {seed: set(np.flatnonzero(imbalance.class_counts_of(
        imbalance.imbalanced_indices(labels, profile, 100, seed), labels, K) < 100)) for seed in range(6)}
    assert all(len(classes) == 3 for classes in chosen.values())
    assert len({frozenset(c) for c in chosen.values()}) > 1
    lowest = imbalance.imbalanced_indices(labels, profile, 100, seed=4, minority_rule="lowest")
    assert set(np.flatnonzero(imbalance.class_counts_of(lowest, labels, K) < 100)) == {0, 1, 2}


def test_same_minority_classes_at_every_rho_and_nested_subsets():
    labels = pool()
    small = imbalance.imbalanced_indices(labels, imbalance.step(0.5, 100), 100, seed=9)
    large = imbalance.imbalanced_indices(labels, imbalance.step(0.5, 4), 100, seed=9)
    assert set(small) <= set(large)


def test_index_files_are_deterministic_byte_for_byte(tmp_path):
    labels = pool()
    profile = imbalance.parse_profile("step-mu0.2-rho10")
    for name in ("a.npy", "b.npy"):
        write_npy(tmp_path / name, imbalance.imbalanced_indices(labels, profile, 100, seed=5))
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    other_seed = imbalance.imbalanced_indices(labels, profile, 100, seed=6)
    assert not np.array_equal(np.load(tmp_path / "a.npy"), other_seed)


def test_profile_names_round_trip():
    for mu, rho in [(0.2, 10), (0.5, 2.5), (0.8, 5000)]:
        profile = imbalance.step(mu, rho)
        assert imbalance.parse_profile(profile.name) == profile


@pytest.mark.parametrize(("call", "message"), [
    (lambda: imbalance.step(0.25, 10).n_minority(10), "not a whole number"),
    (lambda: imbalance.step(0.2, 0.5), "at least 1"),
    (lambda: imbalance.parse_profile("stepmu0.2"), "not a profile name"),
    (lambda: imbalance.minority_classes(10, 2, "highest", 0), "unknown rule"),
])
def test_bad_profiles_are_named(call, message):
    with pytest.raises(imbalance.ProfileError, match=message):
        call()


def test_index_file_outside_the_pool_is_refused(tmp_path):
    write_npy(tmp_path / "bad.npy", np.array([0, 5, 1000]))
    with pytest.raises(imbalance.ProfileError, match=r"bad\.npy.*0\.\.999"):
        imbalance.load_indices(tmp_path / "bad.npy", pool_size=1000)
