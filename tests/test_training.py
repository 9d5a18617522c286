from pathlib import Path

import numpy as np
import pytest
import torch

from imbalance_study import imbalance, models, plan, rundir, training
from imbalance_study.batches import EpochShuffler, TensorBatches
from imbalance_study.loop import Trainee
from imbalance_study.optim import CaffeSGD, make_optimizer
from imbalance_study.protocol import Protocol, checkpoint_iterations
from imbalance_study.sampling import IMBALANCED


def tiny_data(n_per_class=20, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per_class)
    images = rng.integers(0, 60, size=(len(labels), 8, 8), dtype=np.uint8)
    for label in range(k):  # a bright row per class makes the task learnable
        images[labels == label, 2 * label + 1, :] = 250
    return images, labels


def protocol(**overrides):
    settings = dict(iterations=60, batch_size=8, lr=0.05, momentum=0.9, weight_decay=5e-4, momentum_form="caffe",
                    lr_policy={"name": "inv", "gamma": 1e-3, "power": 0.75}, checkpoints=[20, 60], resume_every=10,
                    precision="fp32")
    settings.update(overrides)
    return Protocol.from_config(settings)


def spec(method="baseline", seed=1, loss=None, batches="shuffled", reinitialise=False, tau_normalise=None,
         **overrides) -> plan.Run:
    """A planned run of a toy set (the method's name only names it: what it trains on is given).
    ``loss``: a loss's settings beside the schema's defaults (``loss_settings``)."""
    run_protocol = protocol(**overrides)
    methods = dict(batches=batches, reinitialise=reinitialise, tau_normalise=tau_normalise)
    if loss is not None:
        methods["loss"] = loss_settings(**loss)
    return plan.Run(dataset="toy", profile=imbalance.step(0.5, 2), seed=seed, model="digits_cnn",
                    method=plan.Method(name=method, variant=method, sampler="none", ratio=1.0, index=IMBALANCED,
                                       protocol=run_protocol, base_lr=run_protocol.lr, **methods))


def loss_settings(**settings) -> dict:
    """A method's loss as the config gives it: every key present, the schema's defaults filled in."""
    import yaml

    from imbalance_study import config

    schema = yaml.safe_load(config.SCHEMA.read_text())
    keys = schema["properties"]["methods"]["additionalProperties"]["properties"]["loss"]["properties"]
    return {**{key: entry["default"] for key, entry in keys.items()}, **settings}


def train(run, images, labels, indices, run_dir, inputs=None, phase_one=None, device="cpu", class_counts=None):
    """Train one run one at a time on the CPU (the engine of training.train); a loss sees the class
    counts of ``indices`` unless ``class_counts`` says otherwise."""
    if class_counts is None:
        class_counts = np.bincount(labels[indices], minlength=int(labels.max()) + 1)
    trainee = Trainee(run, indices, run_dir, inputs=inputs or {}, phase_one=phase_one, class_counts=class_counts)
    return training.train(trainee, TensorBatches(images, labels, torch.device(device)), int(labels.max()) + 1,
                          device=device)


def test_inv_policy_is_caffes():
    p = protocol(lr=0.01, lr_policy={"name": "inv", "gamma": 1e-4, "power": 0.75})
    assert p.learning_rate(0) == 0.01
    assert p.learning_rate(10_000) == pytest.approx(0.01 * (1 + 1e-4 * 10_000) ** -0.75)


def test_checkpoint_schedules_include_the_last_iteration():
    assert checkpoint_iterations([100, 50], 1000) == [50, 100, 1000]
    log_spaced = checkpoint_iterations({"spacing": "log", "count": 5, "first": 10}, 10_000)
    assert log_spaced == [10, 56, 316, 1778, 10000]
    assert checkpoint_iterations({"spacing": "linear", "count": 4}, 100) == [25, 50, 75, 100]
    with pytest.raises(ValueError, match="outside"):
        protocol(checkpoints=[61])


def test_caffe_momentum_form_differs_from_pytorch_only_when_lr_changes():
    def run(form, lrs):
        weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        optimizer = make_optimizer(protocol(momentum_form=form, weight_decay=0.0, momentum=0.9), [weight])
        for lr in lrs:
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            (weight ** 2).sum().backward()
            optimizer.step()
        return weight.detach().clone()

    constant = [0.1] * 5
    torch.testing.assert_close(run("caffe", constant), run("pytorch", constant))
    decaying = [0.1, 0.05, 0.02, 0.01, 0.005]
    assert not torch.allclose(run("caffe", decaying), run("pytorch", decaying))
    # By hand, Caffe's form: v1 = lr0*g0; v2 = m*v1 + lr1*g1.
    w0 = torch.tensor([1.0, -2.0])
    v1 = 0.1 * 2 * w0
    w1 = w0 - v1
    v2 = 0.9 * v1 + 0.05 * 2 * w1
    torch.testing.assert_close(run("caffe", [0.1, 0.05]), w1 - v2)


def test_epoch_shuffler_visits_every_example_once_per_epoch_and_resumes():
    shuffler = EpochShuffler(np.arange(10), np.random.default_rng(0))
    drawn = np.concatenate([shuffler.next_batch(4) for _ in range(5)])
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:20]) == list(range(10))
    state = shuffler.state_dict()
    expected = shuffler.next_batch(7)
    restored = EpochShuffler(np.arange(10), np.random.default_rng(99))
    restored.load_state_dict(state)
    assert np.array_equal(restored.next_batch(7), expected)


def final_weights(run_dir):
    return torch.load(rundir.checkpoint_path(run_dir, 60), weights_only=True)["model"]


def test_training_learns_and_writes_checkpoints_and_manifest(tmp_path):
    images, labels = tiny_data()
    manifest = train(spec(), images, labels, np.arange(len(labels)), tmp_path / "run", {"index_sha256": "x"})
    assert [c["iteration"] for c in manifest["checkpoints"]] == [20, 60]
    model = models.build("digits_cnn", 3, (8, 8))
    rundir.load_checkpoint(manifest["checkpoints"][-1], model, manifest["fingerprint"])
    predictions = model.eval()(models.to_input(torch.from_numpy(images))).argmax(1).numpy()
    assert np.mean(predictions == labels) > 0.9


class Killed(Exception):
    pass


def crash_at_step(monkeypatch, step_number):
    """Make the optimizer die at its ``step_number``-th step, like a job killed mid-run."""
    real_step = CaffeSGD.step
    calls = {"n": 0}

    def dying_step(self, closure=None):
        calls["n"] += 1
        if calls["n"] == step_number:
            raise Killed()
        return real_step(self, closure)

    monkeypatch.setattr(CaffeSGD, "step", dying_step)
    return lambda: monkeypatch.setattr(CaffeSGD, "step", real_step)


def test_resume_after_a_crash_is_bit_identical(tmp_path, monkeypatch):
    images, labels = tiny_data()
    indices = np.arange(len(labels))
    train(spec(), images, labels, indices, tmp_path / "whole")

    restore = crash_at_step(monkeypatch, 37)  # between resume saves at 30 and 40
    with pytest.raises(Killed):
        train(spec(), images, labels, indices, tmp_path / "crashed")
    assert not (tmp_path / "crashed" / "run.json").exists()
    assert torch.load(tmp_path / "crashed" / "resume.pt", weights_only=True)["iteration"] == 30
    restore()
    manifest = train(spec(), images, labels, indices, tmp_path / "crashed")
    for name, tensor in final_weights(tmp_path / "whole").items():
        assert torch.equal(tensor, final_weights(tmp_path / "crashed")[name]), name
    assert manifest["checkpoints"][0]["iteration"] == 20
    assert not (tmp_path / "crashed" / "resume.pt").exists()


def test_stale_resume_state_of_other_settings_is_not_used(tmp_path, monkeypatch):
    images, labels = tiny_data()
    indices = np.arange(len(labels))
    restore = crash_at_step(monkeypatch, 45)
    with pytest.raises(Killed):
        train(spec(lr=0.05), images, labels, indices, tmp_path / "run")
    restore()
    assert (tmp_path / "run" / "resume.pt").exists()
    train(spec(lr=0.02), images, labels, indices, tmp_path / "fresh")
    train(spec(lr=0.02), images, labels, indices, tmp_path / "run")
    for name, tensor in final_weights(tmp_path / "fresh").items():
        assert torch.equal(tensor, final_weights(tmp_path / "run")[name]), name


def test_a_replaced_checkpoint_is_refused(tmp_path):
    images, labels = tiny_data()
    manifest = train(spec(), images, labels, np.arange(len(labels)), tmp_path)
    path = rundir.checkpoint_path(tmp_path, 20)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="iter0000020.pt.*checksum"):
        rundir.load_checkpoint(manifest["checkpoints"][0], models.build("digits_cnn", 3, (8, 8)),
                                 manifest["fingerprint"])


def test_lenet5_matches_the_papers_table_2():
    model = models.build("lenet5", 10, (28, 28))
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {"conv1.weight": (20, 1, 5, 5), "conv1.bias": (20,), "conv2.weight": (50, 20, 5, 5),
                      "conv2.bias": (50,), "fc1.weight": (500, 800), "fc1.bias": (500,),
                      "fc2.weight": (10, 500), "fc2.bias": (10,)}
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if n.endswith("bias"))
    bound = (3 / 800) ** 0.5
    assert model.fc1.weight.abs().max() <= bound and model.fc1.weight.abs().max() > 0.9 * bound
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_same_settings_give_identical_scores(tmp_path):
    from imbalance_study import datasets, scoring

    images, labels = tiny_data()
    dataset = datasets.Dataset("toy", images, labels, images, labels, ["a", "b", "c"])
    results = []
    for name in ("first", "second"):
        manifest = train(spec(), images, labels, np.arange(len(labels)), tmp_path / name)
        results.append(scoring.score_run(manifest, dataset, np.arange(len(labels)), {"run": 1},
                                          np.arange(len(labels)), splits=["test", "train"], device="cpu",
                                          silhouette_per_class=5, train_sample_per_class=0))
    assert results[0] == results[1]


def test_two_phase_fine_tunes_only_the_output_layers_of_the_first_phase(tmp_path):
    images, labels = tiny_data()
    everything = np.arange(len(labels))
    first = train(spec(method="over"), images, labels, everything, tmp_path / "over")
    imbalanced = everything[(labels != 2) | (np.arange(len(labels)) % 4 == 0)]
    second = train(spec(method="twophase_over", lr=0.005), images, labels, imbalanced, tmp_path / "two",
                   phase_one=first)
    assert second["trained_layers"] == ["fc2"] and second["training_examples"] == len(imbalanced)
    start, end = (torch.load(manifest["checkpoints"][-1]["path"], weights_only=True)["model"]
                  for manifest in (first, second))
    for name in start:
        if name.startswith("fc2."):
            assert not torch.equal(start[name], end[name]), f"{name} was not fine-tuned"
        else:
            assert torch.equal(start[name], end[name]), f"{name} changed although frozen"
    # The second phase depends on the first: other first-phase weights give another run.
    assert second["inputs"]["phase_one_fingerprint"] == first["fingerprint"]


def test_poly_policy_decays_linearly_to_zero():
    p = protocol(iterations=1000, lr=0.1, lr_policy={"name": "poly", "power": 1.0})
    assert [p.learning_rate(i) for i in (0, 500, 1000)] == pytest.approx([0.1, 0.05, 0.0])


def test_bf16_precision_learns_and_is_part_of_the_fingerprint(tmp_path):
    images, labels = tiny_data()
    fp32, bf16 = spec(), spec(precision="bf16")
    assert fp32.fingerprint_settings()["protocol"]["precision"] == "fp32"
    assert bf16.fingerprint_settings()["protocol"]["precision"] == "bf16"
    # How often the resumable state is saved changes no result, so it is not part of the run's identity.
    assert "resume_every" not in fp32.fingerprint_settings()["protocol"]
    assert spec(resume_every=7).fingerprint_settings() == fp32.fingerprint_settings()
    manifests = {}
    for name, run in (("fp32", fp32), ("bf16", bf16)):
        manifests[name] = train(run, images, labels, np.arange(len(labels)), tmp_path / name)
    assert manifests["fp32"]["fingerprint"] != manifests["bf16"]["fingerprint"]
    model = models.build("digits_cnn", 3, (8, 8))
    rundir.load_checkpoint(manifests["bf16"]["checkpoints"][-1], model, manifests["bf16"]["fingerprint"])
    assert all(tensor.dtype == torch.float32 for tensor in model.state_dict().values())  # weights stay fp32
    predictions = model.eval()(models.to_input(torch.from_numpy(images))).argmax(1).numpy()
    assert np.mean(predictions == labels) > 0.9
    with pytest.raises(ValueError, match="precision: 'fp16'"):
        protocol(precision="fp16")


class Payload:
    """What a malicious resume.pt could hold: unpickling it creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pickle_in_resume_pt_is_refused_without_running(tmp_path, caplog):
    """A resume.pt in a run folder (a shared scratch space, results copied from someone else) is read
    with weights_only: a payload in it never runs, the run starts afresh and the log says why."""
    images, labels = tiny_data()
    run = spec()
    marker = tmp_path / "the payload ran"
    planted = tmp_path / "run" / "resume.pt"
    planted.parent.mkdir()
    fingerprint = Trainee(run, np.arange(len(labels)), planted.parent).fingerprint
    torch.save({"engine": "one_at_a_time", "fingerprint": fingerprint, "iteration": 30, "payload": Payload(marker)},
               planted)
    with caplog.at_level("WARNING"):
        manifest = train(run, images, labels, np.arange(len(labels)), tmp_path / "run")
    assert not marker.exists()
    assert "refused the resume state" in caplog.text and str(planted) in caplog.text
    fresh = train(run, images, labels, np.arange(len(labels)), tmp_path / "fresh")
    assert manifest["fingerprint"] == fresh["fingerprint"]
    for name, tensor in final_weights(tmp_path / "fresh").items():
        assert torch.equal(tensor, final_weights(tmp_path / "run")[name])
    # The payload is real: an unrestricted load would have run it.
    torch.save({"payload": Payload(marker)}, tmp_path / "again.pt")
    torch.load(tmp_path / "again.pt", weights_only=False)
    assert marker.exists()


def test_a_diverging_run_stops_and_its_manifest_says_when(tmp_path, caplog):
    """lr 50: the loss turns non-finite within the first save interval; the run stops there, its
    manifest names the iteration and the reason, and lists only the checkpoints saved before."""
    images, labels = tiny_data()
    with caplog.at_level("WARNING"):
        manifest = train(spec(lr=50.0), images, labels, np.arange(len(labels)), tmp_path / "run")
    diverged = manifest["diverged"]
    assert diverged["iteration"] < 20  # within the first stops: a non-finite loss, or one far above chance
    assert manifest["checkpoints"] == [] and not list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert not (tmp_path / "run" / "resume.pt").exists()
    assert f"diverged at iteration {diverged['iteration']}" in caplog.text
    sound = train(spec(), images, labels, np.arange(len(labels)), tmp_path / "sound")
    assert sound["diverged"] is None and [c["iteration"] for c in sound["checkpoints"]] == [20, 60]


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB file system (tmpfs, mounted as root, as CI runs): writes to it run out of space."""
    import os
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must test a full disk on a small tmpfs")
        pytest.skip("mounting a small tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_named_and_leaves_nothing_half_written(full_disk):
    """torch.save, numpy and h5py each fail in their own words on a full disk; the message says what
    happened and where, and no partial file is left behind."""
    import h5py

    from imbalance_study.atomic import DiskFullError, atomic_path, write_npy

    big = {"model": {"weight": torch.zeros(100_000)}}  # 400 KB: more than the disk
    with pytest.raises(DiskFullError, match=rf"no space left on device while writing {full_disk}/checkpoint\.pt"):
        rundir.save(big, full_disk / "checkpoint.pt")
    with pytest.raises(DiskFullError, match=rf"no space left on device while writing {full_disk}/state\.pt"):
        with atomic_path(full_disk / "state.pt") as temporary:  # torch.save itself: "basic_ios::clear"
            torch.save(big, temporary)
    with pytest.raises(DiskFullError, match=rf"no space left on device while writing {full_disk}/indices\.npy"):
        write_npy(full_disk / "indices.npy", np.zeros(100_000))
    with pytest.raises(DiskFullError, match=rf"no space left on device while writing {full_disk}/predictions\.h5"):
        with atomic_path(full_disk / "predictions.h5") as temporary, h5py.File(temporary, "w") as handle:
            handle.create_dataset("log_probs", data=np.random.default_rng(0).random(100_000))
    assert list(full_disk.iterdir()) == []
    # The check before a save is there: the disk is not even written to when the state cannot fit.
    (full_disk / "filler").write_bytes(b"x" * 200_000)
    with pytest.raises(DiskFullError, match="resume.pt"):
        rundir.save({"model": {"weight": torch.zeros(20_000)}}, full_disk / "run" / "resume.pt")
    assert not list((full_disk / "run").iterdir())


def test_a_batch_larger_than_the_training_set_is_recorded(tmp_path):
    images, labels = tiny_data()
    manifest = train(spec(), images, labels, np.arange(6), tmp_path / "small")
    assert manifest["warnings"] == ["the training set has 6 examples, fewer than a batch (8): every batch repeats "
                                    "examples"]
    assert train(spec(), images, labels, np.arange(len(labels)), tmp_path / "large")["warnings"] == []


def test_a_run_whose_checkpoint_changed_is_trained_again_and_the_log_says_why(tmp_path, caplog):
    images, labels = tiny_data()
    first = train(spec(), images, labels, np.arange(len(labels)), tmp_path / "run")
    changed = rundir.checkpoint_path(tmp_path / "run", 20)
    changed.write_bytes(changed.read_bytes()[:-10])
    with caplog.at_level("WARNING"):
        again = train(spec(), images, labels, np.arange(len(labels)), tmp_path / "run")
    assert f"checkpoint {changed} is not the one its manifest lists (sha256); the run is trained again" in caplog.text
    assert again["checkpoints"] == first["checkpoints"]  # the same weights, trained again bit for bit


def test_divergence_is_a_non_finite_value_or_a_loss_far_above_chance_twice_running():
    from imbalance_study.loop import FRESH, Divergence

    watch = Divergence(10, [FRESH, FRESH, FRESH, FRESH])  # the ceiling is 10 x log 10 = 23.0
    finite = np.array([True, True, True, False])
    assert watch.check(100, np.array([2.0, 30.0, np.nan, 1.0]), finite) == [2, 3]
    assert watch.at[2]["reason"] == "non-finite loss" and watch.at[3]["reason"] == "non-finite weights"
    assert watch.check(200, np.array([50.0, 5.0, 1.0, 1.0]), finite) == []  # network 1 came back below
    assert watch.check(300, np.array([60.0, 40.0, 1.0, 1.0]), finite) == [0]  # twice above in a row
    assert watch.at[0]["iteration"] == 200 and "from iteration 200" in watch.at[0]["reason"]
    assert watch.states[1] == {"above": 1, "since": 300} and not watch.all
    # A resumed watch goes on where the saved one was: one more stop above and network 1 diverged at 300.
    resumed = Divergence(10, [watch.states[1]])
    assert resumed.check(400, np.array([45.0]), np.array([True])) == [0] and resumed.at[0]["iteration"] == 300


def test_class_balanced_batches_draw_every_class_equally_and_resume():
    """Classes uniformly, then an example of the class uniformly, with replacement: at counts 100 /
    10 / 1, each class is about a third of 30,000 draws (binomial sd 0.0027: 0.015 is 5.5 sd) and
    each example of a class an equal share of it."""
    from imbalance_study.samplers import ClassBalancedSampler

    pool_labels = np.repeat([0, 1, 2, 1], [150, 20, 5, 20])
    indices = np.concatenate([np.arange(100), np.arange(150, 160), [170]])  # 100, 10 and 1 of classes 0, 1, 2
    sampler = ClassBalancedSampler(indices, pool_labels[indices], np.random.default_rng(3))
    drawn = sampler.next_batches(300, 100).ravel()
    assert set(drawn) <= set(indices) and sampler.epoch == 30_000 // len(indices)
    shares = np.bincount(pool_labels[drawn], minlength=3) / len(drawn)
    assert np.abs(shares - 1 / 3).max() < 0.015
    per_example = np.bincount(drawn[pool_labels[drawn] == 1] - 150, minlength=10)
    assert per_example.min() > 0.7 * per_example.mean()  # about 1,000 each (sd 30)
    # Cut into batches or drawn in one piece, and resumed from a state: the same examples.
    state = sampler.state_dict()
    expected = sampler.next_batches(4, 7)
    again = ClassBalancedSampler(indices, pool_labels[indices], np.random.default_rng(99))
    again.load_state_dict(torch.load(_saved(state), weights_only=True))
    assert np.array_equal(np.stack([again.next_batch(7) for _ in range(4)]), expected)


def _saved(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


LDAM_DRW = dict(name="ldam", weights="effective_number", beta=0.99, weights_from=0.5, scale=1.0)


def test_deferred_reweighting_switches_on_at_its_iteration_in_the_engine(tmp_path, monkeypatch):
    """weights_from 0.5 of 60 iterations: the steps of iterations 0..29 see weights of one, 30..59
    the effective-number weights of the run's counts."""
    from imbalance_study import losses

    images, labels = tiny_data()
    indices = np.concatenate([np.arange(20), np.arange(20, 26), np.arange(40, 43)])  # 20 / 6 / 3
    seen, general = [], losses.general
    monkeypatch.setattr(losses, "general", lambda *args, **kwargs: seen.append(kwargs["weights"].clone())
                        or general(*args, **kwargs))
    train(spec(loss=LDAM_DRW), images, labels, indices, tmp_path / "run")
    weighted = torch.tensor(losses.class_weights([20, 6, 3], "effective_number", 0.99), dtype=torch.float32)
    assert len(seen) == 60
    assert all(torch.equal(weights, torch.ones(3)) for weights in seen[:30])
    assert all(torch.equal(weights, weighted) for weights in seen[30:])


@pytest.mark.parametrize("weights_from", [0.25, 0.75], ids=["switched_before_the_kill", "switched_after"])
def test_resume_with_a_new_loss_and_class_balanced_batches_is_bit_identical(tmp_path, monkeypatch, weights_from):
    images, labels = tiny_data()
    indices = np.concatenate([np.arange(20), np.arange(20, 26), np.arange(40, 43)])
    run = spec(loss={**LDAM_DRW, "weights_from": weights_from}, batches="class_balanced")
    whole = train(run, images, labels, indices, tmp_path / "whole")
    restore = crash_at_step(monkeypatch, 37)  # resumed from 30: the switch at 15 lies before, at 45 after
    with pytest.raises(Killed):
        train(run, images, labels, indices, tmp_path / "crashed")
    restore()
    resumed = train(run, images, labels, indices, tmp_path / "crashed")
    assert resumed["fingerprint"] == whole["fingerprint"]
    for name, tensor in final_weights(tmp_path / "whole").items():
        assert torch.equal(tensor, final_weights(tmp_path / "crashed")[name]), name
    plain = train(spec(), images, labels, indices, tmp_path / "plain")
    assert not torch.equal(final_weights(tmp_path / "plain")["fc2.weight"],
                           final_weights(tmp_path / "whole")["fc2.weight"])
    assert plain["fingerprint"] != whole["fingerprint"]


def test_classifier_retraining_starts_from_reinitialised_output_layers(tmp_path):
    """cRT: the second phase's fc2 starts from the run's initial fc2 (its init seed, the model's own
    initialisation), the rest from the first phase's last checkpoint; without reinitialise, all of it."""
    images, labels = tiny_data()
    first = train(spec(method="baseline"), images, labels, np.arange(len(labels)), tmp_path / "first")
    trained = torch.load(first["checkpoints"][-1]["path"], weights_only=True)["model"]
    initial = Trainee(spec(method="baseline"), np.arange(3), tmp_path / "x").build_model(3, (8, 8)).state_dict()
    for reinitialise in (True, False):
        run = spec(method="crt", reinitialise=reinitialise, batches="class_balanced", lr=0.005)
        start = Trainee(run, np.arange(3), tmp_path / "y", phase_one=first).build_model(3, (8, 8)).state_dict()
        for name, tensor in start.items():
            expected = initial[name] if reinitialise and name.startswith("fc2.") else trained[name]
            assert torch.equal(tensor, expected), (reinitialise, name)
    assert not torch.equal(initial["fc2.weight"], trained["fc2.weight"])
    second = train(spec(method="crt", reinitialise=True, batches="class_balanced", lr=0.005), images, labels,
                   np.arange(40), tmp_path / "crt", phase_one=first)
    assert second["trained_layers"] == ["fc2"]


def test_tau_normalisation_rescales_each_class_row_of_every_first_phase_checkpoint(tmp_path):
    from imbalance_study import posthoc

    images, labels = tiny_data()
    first = train(spec(), images, labels, np.arange(len(labels)), tmp_path / "first")
    manifests = {}
    for tau in (0.0, 0.5, 1.0):
        trainee = Trainee(spec(method="tau", tau_normalise=tau), np.arange(len(labels)), tmp_path / f"tau{tau}",
                          phase_one=first)
        manifests[tau] = posthoc.normalise_run(trainee, 3, (8, 8))
        assert [c["iteration"] for c in manifests[tau]["checkpoints"]] == [20, 60]
        assert manifests[tau]["inputs"]["phase_one_fingerprint"] == first["fingerprint"]
        for original, normalised in zip(first["checkpoints"], manifests[tau]["checkpoints"]):
            before = torch.load(original["path"], weights_only=True)["model"]
            payload = torch.load(normalised["path"], weights_only=True)
            assert payload["fingerprint"] == manifests[tau]["fingerprint"]
            after = payload["model"]
            rows = before["fc2.weight"].numpy().astype(np.float64)
            expected = rows / np.linalg.norm(rows, axis=1, keepdims=True) ** tau  # by hand, in float64
            np.testing.assert_allclose(after["fc2.weight"].numpy(), expected, rtol=1e-6)  # float32 weights
            for name in before:
                if name != "fc2.weight":
                    assert torch.equal(after[name], before[name]), name
            if tau == 0.0:
                assert torch.equal(after["fc2.weight"], before["fc2.weight"])
            if tau == 1.0:
                np.testing.assert_allclose(np.linalg.norm(after["fc2.weight"].numpy(), axis=1), 1.0, rtol=1e-6)
    assert len({manifest["fingerprint"] for manifest in manifests.values()}) == 3
    # A finished run is not redone.
    mtime = (tmp_path / "tau1.0" / "run.json").stat().st_mtime_ns
    again = posthoc.normalise_run(Trainee(spec(method="tau", tau_normalise=1.0), np.arange(len(labels)),
                                          tmp_path / "tau1.0", phase_one=first), 3, (8, 8))
    assert (again["fingerprint"], again["checkpoints"]) == (manifests[1.0]["fingerprint"], manifests[1.0]["checkpoints"])
    assert (tmp_path / "tau1.0" / "run.json").stat().st_mtime_ns == mtime
