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
    profile = imbalance.step(0.2, 10)
    for name in ("a.npy", "b.npy"):
        write_npy(tmp_path / name, imbalance.imbalanced_indices(labels, profile, 100, seed=5))
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    other_seed = imbalance.imbalanced_indices(labels, profile, 100, seed=6)
    assert not np.array_equal(np.load(tmp_path / "a.npy"), other_seed)


def test_profile_names_are_exact_and_never_in_exponent_form():
    """A name is made from the profile and never parsed back; distinct values get distinct names,
    and every number in a name reads back as the same float."""
    profiles = [imbalance.step(mu, rho) for mu in (0.2, 0.5, 1 / 3, 0.3333333333, 0.333333)
                for rho in (2.5, 10, 5000, 1e6, 1e6 + 1)] + [imbalance.ramp("linear", 1e7)]
    names = [profile.name for profile in profiles]
    assert len(set(names)) == len(profiles)
    assert "step-mu0.2-rho10" in names and "step-mu0.3333333333-rho1000000" in names
    assert "linear-rho10000000" in names and not any("e+" in name or "e-" in name for name in names)
    for profile in profiles:
        numbers = profile.name.replace("step-mu", "").replace("linear-rho", "").split("-rho")
        assert [float(text) for text in numbers] == ([profile.mu] if profile.mu is not None else []) + [profile.rho]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: imbalance.step(0.25, 10).n_minority(10), "not a whole number"),
    (lambda: imbalance.step(0.2, 0.5), "at least 1"),
    (lambda: imbalance.minority_classes(10, 2, "highest", 0), "unknown rule"),
])
def test_bad_profiles_are_named(call, message):
    with pytest.raises(imbalance.ProfileError, match=message):
        call()


def test_index_file_outside_the_pool_is_refused(tmp_path):
    write_npy(tmp_path / "bad.npy", np.array([0, 5, 1000]))
    with pytest.raises(imbalance.ProfileError, match=r"bad\.npy.*0\.\.999"):
        imbalance.load_indices(tmp_path / "bad.npy", pool_size=1000)


def test_linear_profile_steps_evenly_from_cap_to_cap_over_rho():
    counts = imbalance.ramp("linear", 10).ranked_counts(K, 1000)
    assert counts.tolist() == [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    # MNIST's largest ratio leaves one example in the smallest class.
    assert imbalance.ramp("linear", 5000).ranked_counts(K, 5000)[0] == 1


def test_exponential_profile_is_the_long_tail_of_cifar10_lt():
    counts = imbalance.ramp("exponential", 100).ranked_counts(K, 5000)
    expected = [int(np.floor(5000 * 100 ** (-i / 9) + 1e-9)) for i in range(K)][::-1]
    assert counts.tolist() == expected
    assert counts[0] == 50 and counts[-1] == 5000


@pytest.mark.parametrize(("profile", "name"), [(imbalance.ramp("linear", 10), "linear-rho10"),
                                               (imbalance.ramp("exponential", 2.5), "exponential-rho2.5"),
                                               (imbalance.step(0.3, 100), "step-mu0.3-rho100")])
def test_profile_names(profile, name):
    assert profile.name == name


def test_ramp_ranking_random_per_seed_or_lowest_labels_smallest():
    labels = pool(100)
    profile = imbalance.ramp("linear", 10)
    lowest = imbalance.class_counts_of(imbalance.imbalanced_indices(labels, profile, 100, 1, "lowest"), labels, K)
    assert lowest.tolist() == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    orders = {tuple(imbalance.class_counts_of(imbalance.imbalanced_indices(labels, profile, 100, seed), labels, K))
              for seed in range(4)}
    assert len(orders) > 1 and all(sorted(order) == lowest.tolist() for order in orders)


def test_classes_short_of_the_cap_are_always_minority():
    labels = np.repeat(np.arange(K), 100)
    labels = labels[~((labels == 7) & (np.arange(len(labels)) % 100 >= 60))]  # class 7 has 60 < cap 100
    for seed in range(5):
        counts = imbalance.class_counts_of(
            imbalance.imbalanced_indices(labels, imbalance.step(0.2, 10), 100, seed), labels, K)
        assert counts[7] == 10 and sorted(counts.tolist()) == [10, 10] + [100] * 8


def test_a_profile_asking_more_than_a_short_class_has_is_refused():
    labels = np.repeat(np.arange(K), 100)
    labels = labels[~((labels == 3) & (np.arange(len(labels)) % 100 >= 5))]  # class 3 has 5 examples
    with pytest.raises(imbalance.ProfileError, match="class 3 needs 10 examples but the pool has 5"):
        imbalance.imbalanced_indices(labels, imbalance.step(0.1, 10), 100, seed=1)


@pytest.mark.parametrize(("counts", "minority"), [
    ([100, 10, 100, 10], [False, True, False, True]),
    ([10, 20, 30, 40, 50, 60], [True, True, True, False, False, False]),
    ([50, 50, 50], [False, False, False]),
    ([357, 21], [False, True]),
])
def test_minority_mask(counts, minority):
    assert imbalance.minority_mask(np.array(counts)).tolist() == minority
