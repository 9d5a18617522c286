"""K runs trained at once as one stacked network follow the trajectories they follow one at a time."""

import numpy as np
import pytest
import torch

from imbalance_study import bundles, models, stacked, training
from .test_training import protocol, tiny_data


def specs(methods=("baseline", "over"), seeds=(1, 2), **overrides):
    return [training.RunSpec(dataset="toy", profile="step-mu0.5-rho2", seed=seed, method=method, model="digits_cnn",
                             protocol=protocol(**overrides)) for seed in seeds for method in methods]


def index_sets(count, labels, size=40):
    rng = np.random.default_rng(0)
    # Different sizes per run, with replicates, as over- and undersampled sets have.
    return [np.sort(rng.choice(len(labels), size + 7 * position, replace=True)) for position in range(count)]


def last_weights(manifest):
    return torch.load(manifest["checkpoints"][-1]["path"], weights_only=True)["model"]


def one_at_a_time(tmp_path, run_specs, indices, phase_ones=None, device="cpu"):
    images, labels = tiny_data()
    manifests = []
    for position, spec in enumerate(run_specs):
        run_dir = tmp_path / f"single{position}"
        manifests.append(training.train(spec, images, labels, indices[position], run_dir, run_dir / "run.json", {},
                                        phase_one=phase_ones[position] if phase_ones else None, device=device))
    return manifests


def at_once(tmp_path, run_specs, indices, phase_ones=None, device="cpu"):
    images, labels = tiny_data()
    runs = [stacked.StackedRun(spec, indices[position], tmp_path / f"stacked{position}",
                               tmp_path / f"stacked{position}" / "run.json", {},
                               phase_one=phase_ones[position] if phase_ones else None)
            for position, spec in enumerate(run_specs)]
    return stacked.train_stacked(runs, training.TensorBatches(images, labels, torch.device(device)), n_classes=3,
                                 device=device)


@pytest.mark.parametrize("momentum_form", ["caffe", "pytorch"])
def test_k_at_once_matches_one_at_a_time(tmp_path, momentum_form):
    run_specs = specs(momentum_form=momentum_form)
    indices = index_sets(len(run_specs), tiny_data()[1])
    alone = one_at_a_time(tmp_path, run_specs, indices)
    together = at_once(tmp_path, run_specs, indices)
    for single, bundled in zip(alone, together):
        assert single["fingerprint"] == bundled["fingerprint"]
        assert [c["iteration"] for c in single["checkpoints"]] == [c["iteration"] for c in bundled["checkpoints"]]
        expected, got = last_weights(single), last_weights(bundled)
        assert set(expected) == set(got)
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5)
    # The runs really differ from each other (different seeds and data), so the match is not trivial.
    first, second = last_weights(together[0]), last_weights(together[1])
    assert not torch.allclose(first["fc2.weight"], second["fc2.weight"])


def test_two_phase_at_once_trains_only_the_output_layers_and_matches(tmp_path):
    first_specs = specs(methods=("over",))
    labels = tiny_data()[1]
    indices = index_sets(len(first_specs), labels)
    phase_ones = at_once(tmp_path / "first", first_specs, indices)
    second_specs = specs(methods=("twophase_over",), lr=0.005)
    imbalanced = index_sets(len(second_specs), labels, size=30)
    alone = one_at_a_time(tmp_path / "alone", second_specs, imbalanced, phase_ones)
    together = at_once(tmp_path / "together", second_specs, imbalanced, phase_ones)
    for phase_one, single, bundled in zip(phase_ones, alone, together):
        start, expected, got = last_weights(phase_one), last_weights(single), last_weights(bundled)
        for name in got:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5)
            if name.startswith("fc2."):
                assert not torch.equal(got[name], start[name]), f"{name} should have been fine-tuned"
            else:
                assert torch.equal(got[name], start[name]), f"{name} should have stayed frozen"


def test_a_finished_run_is_not_trained_again(tmp_path):
    run_specs = specs(seeds=(1,), methods=("baseline",))
    indices = index_sets(1, tiny_data()[1])
    first = at_once(tmp_path, run_specs, indices)[0]
    mtime = (tmp_path / "stacked0" / "run.json").stat().st_mtime_ns
    again = at_once(tmp_path, run_specs, indices)[0]
    assert again["fingerprint"] == first["fingerprint"] and again["checkpoints"] == first["checkpoints"]
    assert (tmp_path / "stacked0" / "run.json").stat().st_mtime_ns == mtime


def test_runs_resumed_at_different_iterations_are_trained_in_groups(tmp_path, monkeypatch):
    """A bundle whose runs stand at different iterations (another packing was killed) still ends
    where the runs would end uninterrupted."""
    run_specs = specs(iterations=40, checkpoints=[40], resume_every=10)
    indices = index_sets(len(run_specs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", run_specs, indices)
    # Kill a bundle of the first two runs when it starts saving iteration 30: both stay at 20.
    original = stacked.atomic_path
    calls = {"count": 0}

    def dying_atomic_path(path):
        calls["count"] += 1
        if calls["count"] == 5:  # two resume states at 10, two at 20, then the first at 30
            raise KeyboardInterrupt
        return original(path)

    monkeypatch.setattr(stacked, "atomic_path", dying_atomic_path)
    with pytest.raises(KeyboardInterrupt):
        at_once(tmp_path / "resumed", run_specs[:2], indices[:2])
    monkeypatch.setattr(stacked, "atomic_path", original)
    for position in (0, 1):
        resume = tmp_path / "resumed" / f"stacked{position}" / "resume.pt"
        assert torch.load(resume, weights_only=False)["iteration"] == 20
    images, labels = tiny_data()
    runs = [stacked.StackedRun(spec, indices[position], tmp_path / "resumed" / f"stacked{position}",
                               tmp_path / "resumed" / f"stacked{position}" / "run.json", {})
            for position, spec in enumerate(run_specs)]
    resumed = stacked.train_stacked(runs, training.TensorBatches(images, labels, torch.device("cpu")), n_classes=3)
    for expected, got in zip(reference, resumed):
        for name, tensor in last_weights(expected).items():
            torch.testing.assert_close(last_weights(got)[name], tensor, rtol=1e-4, atol=1e-5)


def test_bundles_refuse_mixed_protocols(tmp_path):
    run_specs = specs(seeds=(1,), methods=("baseline",)) + specs(seeds=(2,), methods=("baseline",), lr=0.02)
    with pytest.raises(ValueError, match="one model and one protocol"):
        at_once(tmp_path, run_specs, index_sets(2, tiny_data()[1]))


def test_engine_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    small = models.build("digits_cnn", 10, (8, 8))
    with_batch_norm = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert bundles.choose_engine("auto", cpu, small, in_memory=True) == "one_at_a_time"
    assert bundles.choose_engine("auto", cuda, small, in_memory=True) == "stacked"
    assert bundles.choose_engine("always", cpu, small, in_memory=True) == "stacked"
    assert bundles.choose_engine("never", cuda, small, in_memory=True) == "one_at_a_time"
    assert bundles.choose_engine("always", cuda, with_batch_norm, in_memory=True) == "one_at_a_time"
    assert bundles.choose_engine("always", cuda, small, in_memory=False) == "one_at_a_time"


def interrupted_at_once(tmp_path, monkeypatch, run_specs, indices, failing_call):
    """Train stacked, killed (KeyboardInterrupt) when the ``failing_call``-th file starts being written."""
    original = stacked.atomic_path
    calls = {"count": 0}

    def dying_atomic_path(path):
        calls["count"] += 1
        if calls["count"] == failing_call:
            raise KeyboardInterrupt
        return original(path)

    monkeypatch.setattr(stacked, "atomic_path", dying_atomic_path)
    with pytest.raises(KeyboardInterrupt):
        at_once(tmp_path, run_specs, indices)
    monkeypatch.setattr(stacked, "atomic_path", original)


def test_a_resume_state_of_the_other_engine_starts_the_run_afresh(tmp_path, monkeypatch):
    """A stacked job killed on a GPU node and retried one at a time (say, on a CPU) trains the run
    from the start instead of failing on a state it cannot read."""
    run_specs = specs(seeds=(1,), methods=("baseline",), iterations=40, checkpoints=[40], resume_every=10)
    indices = index_sets(1, tiny_data()[1])
    interrupted_at_once(tmp_path, monkeypatch, run_specs, indices, failing_call=3)
    assert torch.load(tmp_path / "stacked0" / "resume.pt", weights_only=False)["engine"] == "stacked"
    images, labels = tiny_data()
    retried = training.train(run_specs[0], images, labels, indices[0], tmp_path / "stacked0",
                             tmp_path / "stacked0" / "run.json", {})
    fresh = one_at_a_time(tmp_path / "fresh", run_specs, indices)[0]
    for name, tensor in last_weights(fresh).items():
        assert torch.equal(last_weights(retried)[name], tensor)


def test_resuming_without_momentum_state_works(tmp_path, monkeypatch):
    """PyTorch's SGD keeps no momentum buffer at momentum 0: a resumed stacked run has none to restore."""
    run_specs = specs(iterations=40, checkpoints=[40], resume_every=10, momentum_form="pytorch", momentum=0.0)
    indices = index_sets(len(run_specs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", run_specs, indices)
    interrupted_at_once(tmp_path / "resumed", monkeypatch, run_specs, indices, failing_call=9)
    resumed = at_once(tmp_path / "resumed", run_specs, indices)
    for expected, got in zip(reference, resumed):
        for name, tensor in last_weights(expected).items():
            torch.testing.assert_close(last_weights(got)[name], tensor, rtol=1e-4, atol=1e-5)
