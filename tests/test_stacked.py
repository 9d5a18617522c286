"""K runs trained at once as one stacked network follow the trajectories they follow one at a time.

The engines differ only in the order of floating-point sums (a grouped convolution against K single
ones), so they are compared in float64 (``float64`` fixture): there a reordered sum of n terms
differs by at most about n * 1.1e-16 of its magnitude, about 1e-13 for the largest sums of these
networks, and 60 SGD steps do not amplify that past ``TOLERANCE`` = 1e-9, while a wrong gradient,
batch or momentum moves weights by more than 1e-3. In float32 the same comparison depends on which
kernels a CPU picks (AVX-512 and AMX machines sum in another order), so no float32 tolerance is used.
"""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from imbalance_study import bundles, models, stacked
from imbalance_study.batches import TensorBatches
from imbalance_study.loop import Trainee
from .test_training import LDAM_DRW, spec, tiny_data, train

TOLERANCE = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(params=[1, 2, 4], ids=lambda threads: f"{threads}threads")
def threads(request):
    """The comparison must hold whatever kernels and split of work the thread count brings."""
    previous = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(previous)


def specs(methods=("baseline", "over"), seeds=(1, 2), **overrides):
    return [spec(method=method, seed=seed, **overrides) for seed in seeds for method in methods]


def index_sets(count, labels, size=40):
    rng = np.random.default_rng(0)
    # Different sizes per run, with replicates, as over- and undersampled sets have.
    return [np.sort(rng.choice(len(labels), size + 7 * position, replace=True)) for position in range(count)]


def last_weights(manifest):
    return torch.load(manifest["checkpoints"][-1]["path"], weights_only=True)["model"]


def one_at_a_time(tmp_path, runs, indices, phase_ones=None, device="cpu"):
    images, labels = tiny_data()
    return [train(run, images, labels, indices[position], tmp_path / f"single{position}",
                  phase_one=phase_ones[position] if phase_ones else None, device=device)
            for position, run in enumerate(runs)]


def trainees(tmp_path, runs, indices, phase_ones=None, name="stacked"):
    labels = tiny_data()[1]
    return [Trainee(run, indices[position], tmp_path / f"{name}{position}",
                    phase_one=phase_ones[position] if phase_ones else None,
                    class_counts=np.bincount(labels[indices[position]], minlength=3))  # as train() gives them
            for position, run in enumerate(runs)]


def at_once(tmp_path, runs, indices, phase_ones=None, device="cpu", conv="grouped"):
    images, labels = tiny_data()
    return stacked.train_stacked(trainees(tmp_path, runs, indices, phase_ones),
                                 TensorBatches(images, labels, torch.device(device)), n_classes=3, device=device,
                                 conv=conv)


def assert_same_weights(got, expected):
    for bundled, single in zip(got, expected):
        assert single["fingerprint"] == bundled["fingerprint"]
        reference, weights = last_weights(single), last_weights(bundled)
        assert set(reference) == set(weights)
        for name in reference:
            assert reference[name].dtype == torch.float64
            torch.testing.assert_close(weights[name], reference[name], **TOLERANCE)


@pytest.mark.parametrize("momentum_form", ["caffe", "pytorch"])
def test_k_at_once_matches_one_at_a_time(tmp_path, momentum_form, float64, threads):
    runs = specs(momentum_form=momentum_form)
    indices = index_sets(len(runs), tiny_data()[1])
    alone = one_at_a_time(tmp_path, runs, indices)
    together = at_once(tmp_path, runs, indices)
    for single, bundled in zip(alone, together):
        assert [c["iteration"] for c in single["checkpoints"]] == [c["iteration"] for c in bundled["checkpoints"]]
    assert_same_weights(together, alone)
    # The runs really differ from each other (different seeds and data), so the match is not trivial.
    first, second = last_weights(together[0]), last_weights(together[1])
    assert (first["fc2.weight"] - second["fc2.weight"]).abs().max() > 1e-3


def test_k_at_once_matches_one_at_a_time_with_augmentation(tmp_path, float64):
    """Random crops and flips (protocol augment): each network's batch is its run's draw (a gather,
    exact in either engine), so the engines differ as without augmentation, by summation order only:
    the same TOLERANCE (module docstring). Augmentation changes where the runs end (by more than 1e-3)."""
    augmented = specs(augment={"crop_padding": 2, "flip": True})
    indices = index_sets(len(augmented), tiny_data()[1])
    alone = one_at_a_time(tmp_path / "alone", augmented, indices)
    together = at_once(tmp_path / "together", augmented, indices)
    assert_same_weights(together, alone)
    plain = at_once(tmp_path / "plain", specs(), indices)
    for with_augment, without in zip(together, plain):
        assert with_augment["fingerprint"] != without["fingerprint"]
        assert (last_weights(with_augment)["fc2.weight"] - last_weights(without)["fc2.weight"]).abs().max() > 1e-3


def imbalanced_index_sets(count, labels):
    """Index files of about 10:4:1, a different draw per run (tiny_data has 20 examples per class)."""
    rng = np.random.default_rng(1)
    return [np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == label), size, replace=True)
                                    for label, size in enumerate((30 + 3 * position, 12, 3))]))
            for position in range(count)]


SHORT = dict(iterations=40, checkpoints=[40], resume_every=20)  # enough steps to tell a wrong loss by 1e-3
NEW_LOSSES = {"weighted_cross_entropy": dict(name="cross_entropy", weights="inverse"),
              "effective_number": dict(name="cross_entropy", weights="effective_number", beta=0.99),
              "focal": dict(name="focal", gamma=2.0, weights="inverse"),
              "ldam_drw": LDAM_DRW,
              "logit_adjusted": dict(name="logit_adjusted", tau=1.0),
              "balanced_softmax": dict(name="balanced_softmax")}


@pytest.mark.parametrize("losses", [[name] for name in NEW_LOSSES] + [["plain", *NEW_LOSSES]],
                         ids=lambda losses: losses[0] if len(losses) == 1 else "all_in_one_bundle")
def test_new_losses_at_once_match_one_at_a_time(tmp_path, float64, losses):
    """Each new loss, two seeds stacked; and every loss in one bundle, where a plain cross-entropy
    run computes the general form (``losses.general``, neutral parameters) while alone it computes
    ``cross_entropy`` itself: the same terms summed in another order, within TOLERANCE (module docstring)."""
    runs = [spec(method=name, seed=seed, loss=NEW_LOSSES.get(name), **SHORT) for name in losses
            for seed in ((1, 2) if len(losses) == 1 else (1,))]
    indices = imbalanced_index_sets(len(runs), tiny_data()[1])
    alone = one_at_a_time(tmp_path / "alone", runs, indices)
    together = at_once(tmp_path / "together", runs, indices)
    assert not any(manifest["diverged"] for manifest in alone)
    assert_same_weights(together, alone)
    if len(losses) > 1:  # the losses really differ: each run ends away from the plain one's weights
        plain = last_weights(together[0])["fc2.weight"]
        assert all((last_weights(manifest)["fc2.weight"] - plain).abs().max() > 1e-3 for manifest in together[1:])


def test_class_balanced_batches_and_classifier_retraining_at_once_match_one_at_a_time(tmp_path, float64):
    """Class-balanced batches in a first phase (beside shuffled ones), then cRT (re-initialised output
    layer, class-balanced batches) beside a plain second phase, stacked against one at a time."""
    labels = tiny_data()[1]
    first_runs = [spec(method="baseline", seed=1, **SHORT),
                  spec(method="balanced", seed=1, batches="class_balanced", **SHORT),
                  spec(method="balanced", seed=2, batches="class_balanced", loss=NEW_LOSSES["focal"], **SHORT)]
    indices = imbalanced_index_sets(len(first_runs), labels)
    alone = one_at_a_time(tmp_path / "alone", first_runs, indices)
    together = at_once(tmp_path / "together", first_runs, indices)
    assert_same_weights(together, alone)
    second_runs = [spec(method="crt", seed=1, batches="class_balanced", reinitialise=True, lr=0.005, **SHORT),
                   spec(method="twophase", seed=1, lr=0.005, **SHORT),
                   spec(method="crt", seed=2, batches="class_balanced", reinitialise=True, lr=0.005, **SHORT)]
    phase_ones = [together[0], together[0], together[2]]
    assert_same_weights(at_once(tmp_path / "second", second_runs, indices, phase_ones),
                        one_at_a_time(tmp_path / "second_alone", second_runs, indices, phase_ones))


def test_k_at_once_with_gemm_convolutions_matches_one_at_a_time(tmp_path, float64):
    """engine.conv: gemm computes the same networks (float64, as above), a first and a second phase."""
    labels = tiny_data()[1]
    runs = specs()
    indices = index_sets(len(runs), labels)
    alone = one_at_a_time(tmp_path / "alone", runs, indices)
    together = at_once(tmp_path / "together", runs, indices, conv="gemm")
    assert_same_weights(together, alone)
    second_runs = specs(methods=("twophase_over",), lr=0.005)
    phase_ones = [together[1], together[3]]  # the over runs of seeds 1 and 2
    imbalanced = index_sets(len(second_runs), labels, size=30)
    assert_same_weights(at_once(tmp_path / "second", second_runs, imbalanced, phase_ones, conv="gemm"),
                        one_at_a_time(tmp_path / "second_alone", second_runs, imbalanced, phase_ones))


@pytest.mark.parametrize(("layers", "trained"), [((), ("fc2",)), (("fc1", "fc2"), ("fc1", "fc2"))],
                         ids=["model_output_layers", "configured_layers"])
def test_two_phase_at_once_trains_only_the_output_layers_and_matches(tmp_path, float64, layers, trained):
    """The second phase trains the model's output layers, or the layers ``two_phase.layers`` names."""
    labels = tiny_data()[1]
    first_runs = specs(methods=("over",))
    indices = index_sets(len(first_runs), labels)
    phase_ones = at_once(tmp_path / "first", first_runs, indices)
    second_runs = [dataclasses.replace(run, method=dataclasses.replace(run.method, fine_tuned=layers))
                   for run in specs(methods=("twophase_over",), lr=0.005)]
    imbalanced = index_sets(len(second_runs), labels, size=30)
    alone = one_at_a_time(tmp_path / "alone", second_runs, imbalanced, phase_ones)
    together = at_once(tmp_path / "together", second_runs, imbalanced, phase_ones)
    assert_same_weights(together, alone)
    for phase_one, bundled in zip(phase_ones, together):
        assert bundled["trained_layers"] == list(trained)
        start, got = last_weights(phase_one), last_weights(bundled)
        for name in got:
            if name.split(".")[0] in trained:
                assert not torch.equal(got[name], start[name]), f"{name} should have been fine-tuned"
            else:
                assert torch.equal(got[name], start[name]), f"{name} should have stayed frozen"


def test_a_second_phase_naming_a_layer_the_model_lacks_is_refused(tmp_path):
    labels = tiny_data()[1]
    phase_ones = at_once(tmp_path / "first", specs(methods=("over",), seeds=(1,)), index_sets(1, labels))
    (run,) = specs(methods=("twophase_over",), seeds=(1,))
    run = dataclasses.replace(run, method=dataclasses.replace(run.method, fine_tuned=("fc9",)))
    for train_with in (one_at_a_time, at_once):
        with pytest.raises(ValueError, match="has no layer fc9; its layers are conv1, conv2, fc1, fc2"):
            train_with(tmp_path / train_with.__name__, [run], index_sets(1, labels), phase_ones)


def test_a_finished_run_is_not_trained_again(tmp_path):
    runs = specs(seeds=(1,), methods=("baseline",))
    indices = index_sets(1, tiny_data()[1])
    first = at_once(tmp_path, runs, indices)[0]
    mtime = (tmp_path / "stacked0" / "run.json").stat().st_mtime_ns
    again = at_once(tmp_path, runs, indices)[0]
    assert again["fingerprint"] == first["fingerprint"] and again["checkpoints"] == first["checkpoints"]
    assert (tmp_path / "stacked0" / "run.json").stat().st_mtime_ns == mtime


def interrupted_at_once(tmp_path, monkeypatch, runs, indices, failing_call):
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
        at_once(tmp_path, runs, indices)
    monkeypatch.setattr(stacked, "atomic_path", original)


def test_runs_resumed_at_different_iterations_are_trained_in_groups(tmp_path, monkeypatch, float64):
    """A bundle whose runs stand at different iterations (another packing was killed) still ends
    where the runs would end uninterrupted."""
    runs = specs(iterations=40, checkpoints=[40], resume_every=10)
    indices = index_sets(len(runs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", runs, indices)
    # Kill a bundle of the first two runs when it starts saving iteration 30 (two resume states at
    # 10, two at 20, then the first at 30): both stay at 20.
    interrupted_at_once(tmp_path / "resumed", monkeypatch, runs[:2], indices[:2], failing_call=5)
    for position in (0, 1):
        resume = tmp_path / "resumed" / f"stacked{position}" / "resume.pt"
        assert torch.load(resume, weights_only=True)["iteration"] == 20
    resumed = at_once(tmp_path / "resumed", runs, indices)
    assert {manifest["engine"]["networks_at_once"] for manifest in resumed} == {2}  # two groups of two
    assert_same_weights(resumed, reference)


def test_bundles_refuse_mixed_protocols(tmp_path):
    runs = specs(seeds=(1,), methods=("baseline",)) + specs(seeds=(2,), methods=("baseline",), lr=0.02)
    with pytest.raises(ValueError, match="one model and one protocol"):
        at_once(tmp_path, runs, index_sets(2, tiny_data()[1]))


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


def test_a_resume_state_of_the_other_engine_starts_the_run_afresh(tmp_path, monkeypatch):
    """A stacked job killed on a GPU node and retried one at a time (say, on a CPU) trains the run
    from the start instead of failing on a state it cannot read."""
    runs = specs(seeds=(1,), methods=("baseline",), iterations=40, checkpoints=[40], resume_every=10)
    indices = index_sets(1, tiny_data()[1])
    interrupted_at_once(tmp_path, monkeypatch, runs, indices, failing_call=3)
    assert torch.load(tmp_path / "stacked0" / "resume.pt", weights_only=True)["engine"] == "stacked"
    images, labels = tiny_data()
    retried = train(runs[0], images, labels, indices[0], tmp_path / "stacked0")
    fresh = one_at_a_time(tmp_path / "fresh", runs, indices)[0]
    for name, tensor in last_weights(fresh).items():
        assert torch.equal(last_weights(retried)[name], tensor)


def test_resuming_without_momentum_state_works(tmp_path, monkeypatch, float64):
    """PyTorch's SGD keeps no momentum buffer at momentum 0: a resumed stacked run has none to restore."""
    runs = specs(iterations=40, checkpoints=[40], resume_every=10, momentum_form="pytorch", momentum=0.0)
    indices = index_sets(len(runs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", runs, indices)
    interrupted_at_once(tmp_path / "resumed", monkeypatch, runs, indices, failing_call=9)
    assert_same_weights(at_once(tmp_path / "resumed", runs, indices), reference)


JOB_CONFIG = {
    "datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 40, "test_per_class": 20,
                            "model": "digits_cnn", "protocol": "digits"}},
    "protocols": {"digits": {"iterations": 80, "batch_size": 16, "lr": 0.02, "checkpoints": [20, 80],
                             "lr_policy": {"name": "inv", "gamma": 1e-4, "power": 0.75}}},
    "methods": {"baseline": {"sampler": "none"}, "over": {"sampler": "over"}},
    "study": {"datasets": ["digits"], "seeds": [1, 2], "methods": ["baseline", "over"],
              "profiles": {"step": {"mu": [0.5], "rho": [5]}}},
    "scoring": {"splits": ["test", "train"]},
}


def bundle_job(workdir, monkeypatch, device, stack, **protocol):
    """One job of the workflow (rule train_bundle's bundles.run_bundle) in ``workdir``: the study's one
    bundle, its dataset and index files as the workflow's rules write them; returns its timings and
    score rows. ``protocol``: settings of the protocol to change."""
    import copy

    import pandas as pd

    from imbalance_study import config, datasets, plan, sampling, source_facts
    from imbalance_study.atomic import write_json

    settings = copy.deepcopy(JOB_CONFIG)
    settings["protocols"]["digits"].update(protocol)
    config.validate(settings)
    study = plan.resolve(settings)
    (bundle,) = study.bundles
    cell = study.cell("digits", bundle.profile.name)
    workdir.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(workdir)
    dataset_path = study.datasets["digits"].path
    dataset = datasets.prepare("digits", source_facts.content_settings(settings["datasets"]["digits"]), dataset_path)
    manifest = sampling.write_index_files(dataset.train_labels, cell.profile, 40, cell.data_seeds(), "random",
                                          cell.index_files, cell.index_paths(), cell.context)
    write_json(plan.INDICES.format(dataset="digits", profile=cell.profile.name), manifest)
    timings = bundles.run_bundle(bundle.members(), dataset_path, plan.INDICES.format(dataset="digits",
                                 profile=cell.profile.name), "scores.csv", "runs.json", device=device, stack=stack,
                                 scoring_settings=settings["scoring"], conv="grouped", graphs="never")
    return timings, pd.read_csv("scores.csv")


def test_a_job_scores_the_same_stacked_or_one_at_a_time(tmp_path, monkeypatch, float64):
    """bundles.run_bundle as the rule calls it: both engines train the job's runs and write the same
    score rows (float64, see the module's docstring), silhouettes included."""
    single, single_scores = bundle_job(tmp_path / "single", monkeypatch, "cpu", "never")
    together, stacked_scores = bundle_job(tmp_path / "stacked", monkeypatch, "cpu", "always")
    assert (single["engine"], together["engine"]) == ("one_at_a_time", "stacked")
    keys = ["seed", "variant", "iteration", "split", "thresholded", "tau", "metric", "class", "group"]
    merged = single_scores.merge(stacked_scores, on=keys, suffixes=("_single", "_stacked"), validate="one_to_one")
    assert len(merged) == len(single_scores) == len(stacked_scores) > 100
    assert set(merged["metric"]) == {"roc_auc", "accuracy", "recall", "loss", "silhouette", "balanced_accuracy",
                                     "macro_f1", "g_mean"}
    assert (merged["value_single"] - merged["value_stacked"]).abs().max() < TOLERANCE["atol"]


def test_one_network_diverging_leaves_the_others_as_they_were(tmp_path, monkeypatch):
    """A network whose loss turns NaN (here forced, from its 26th step) is stopped and marked at the
    next stop; the others, stacked beside it, end exactly where they end without it."""
    runs = specs(iterations=40, checkpoints=[20, 40], resume_every=10)
    indices = index_sets(len(runs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", runs, indices)
    original, steps = stacked.Stacked.losses, {"count": 0}

    def poisoned(self, inputs, targets):
        losses = original(self, inputs, targets)
        steps["count"] += 1
        if steps["count"] > 25:
            losses = losses * torch.tensor([1.0, float("nan"), 1.0, 1.0])
        return losses

    monkeypatch.setattr(stacked.Stacked, "losses", poisoned)
    together = at_once(tmp_path / "poisoned", runs, indices)
    assert together[1]["diverged"]["iteration"] == 30 and [c["iteration"] for c in together[1]["checkpoints"]] == [20]
    for position in (0, 2, 3):
        assert together[position]["diverged"] is None
        for name, tensor in last_weights(reference[position]).items():
            assert torch.equal(last_weights(together[position])[name], tensor), name


def test_a_job_marks_the_runs_that_diverged(tmp_path, monkeypatch):
    """lr 50 (the issue's case): every run diverges; the job says so in each run's rows (diverged_at)
    and in one row of metric diverged per run, scores what was saved before, and none is selected."""
    from imbalance_study import selection
    from imbalance_study.figures import normalize_scores

    _, scores = bundle_job(tmp_path / "job", monkeypatch, "cpu", "never", lr=50.0)
    scores = normalize_scores(scores)
    marker = scores[scores["metric"] == "diverged"]
    assert len(marker) == 4 and marker["diverged_at"].tolist() == marker["iteration"].tolist()
    assert scores["diverged_at"].notna().all() and (scores["iteration"] <= scores["diverged_at"]).all()
    assert not selection.mark_selected(scores)["selected"].any()


def test_an_edited_index_file_is_refused_before_training(tmp_path, monkeypatch):
    """An index file changed after its indices job wrote it (still in the pool's range, so it would
    load) is refused: the job checks each file against the sha256 in indices.json."""
    import copy

    from imbalance_study import config, plan
    from imbalance_study.atomic import write_npy

    bundle_job(tmp_path / "job", monkeypatch, "cpu", "never")
    settings = copy.deepcopy(JOB_CONFIG)
    config.validate(settings)
    (bundle,) = plan.resolve(settings).bundles
    path = bundle.runs[1].index_path()
    edited = np.load(path)
    edited[0] = edited[-1]  # another example of the pool
    write_npy(path, edited)
    with pytest.raises(bundles.IndexFileChanged, match=rf"{path}: not the index file its indices job wrote"):
        bundles.run_bundle(bundle.members(), "results/datasets/digits.h5",
                           plan.INDICES.format(dataset="digits", profile=bundle.profile.name), "again.csv", "again.json",
                           device="cpu", stack="never", scoring_settings=settings["scoring"], conv="grouped",
                           graphs="never")


def test_a_network_that_diverged_is_finished_at_once_and_a_kill_later_does_not_train_it_again(tmp_path,
                                                                                               monkeypatch):
    runs = specs(iterations=40, checkpoints=[20, 40], resume_every=10)
    indices = index_sets(len(runs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", runs, indices)
    original, steps = stacked.Stacked.losses, {"count": 0}

    def poisoned(self, inputs, targets):
        steps["count"] += 1
        losses = original(self, inputs, targets)
        return losses * torch.tensor([1.0, float("nan"), 1.0, 1.0]) if steps["count"] > 25 else losses

    monkeypatch.setattr(stacked.Stacked, "losses", poisoned)
    # Saves of 4 resume states at 10, 4 checkpoints and 4 states at 20, 3 states at 30 (network 1
    # diverged there): killed as the 16th file, at 40, starts.
    interrupted_at_once(tmp_path / "killed", monkeypatch, runs, indices, failing_call=16)
    diverged = tmp_path / "killed" / "stacked1" / "run.json"
    first = diverged.read_text()
    assert '"iteration": 30' in first and not (tmp_path / "killed" / "stacked0" / "run.json").exists()
    monkeypatch.setattr(stacked.Stacked, "losses", original)
    resumed = at_once(tmp_path / "killed", runs, indices)
    assert diverged.read_text() == first and resumed[1]["diverged"]["iteration"] == 30
    for position in (0, 2, 3):
        for name, tensor in last_weights(reference[position]).items():
            assert torch.equal(last_weights(resumed[position])[name], tensor), name


def test_a_second_phase_whose_first_phase_diverged_is_marked_and_not_trained(tmp_path, monkeypatch):
    import copy

    from imbalance_study import config, datasets, plan, sampling, source_facts
    from imbalance_study.atomic import write_json

    settings = copy.deepcopy(JOB_CONFIG)
    settings["methods"] = {"over": {"sampler": "over", "train": {"lr": 50.0}}, "twophase": {"two_phase": {"from": "over"}}}
    settings["study"].update(methods=["over", "twophase"], seeds=[1])
    config.validate(settings)
    study = plan.resolve(settings)
    cell = study.cells[0]
    monkeypatch.chdir(tmp_path)
    dataset = datasets.prepare("digits", source_facts.content_settings(settings["datasets"]["digits"]),
                               study.datasets["digits"].path)
    indices_path = plan.INDICES.format(dataset="digits", profile=cell.profile.name)
    write_json(indices_path, sampling.write_index_files(dataset.train_labels, cell.profile, 40, cell.data_seeds(), "random",
                                                        cell.index_files, cell.index_paths(), cell.context))
    for number, bundle in enumerate(study.bundles):
        bundles.run_bundle(bundle.members(), study.datasets["digits"].path, indices_path, f"scores{number}.csv",
                           f"runs{number}.json", device="cpu", stack="never", scoring_settings=settings["scoring"],
                           conv="grouped", graphs="never")
    (second,) = study.bundles[1].runs
    manifest = json.loads((tmp_path / second.directory / "run.json").read_text())
    assert manifest["diverged"]["reason"].startswith("its first phase diverged at iteration")
    assert manifest["checkpoints"] == [] and manifest["train_seconds"] == 0
    rows = pd.read_csv(tmp_path / "scores1.csv")
    assert rows["metric"].tolist() == ["diverged"] and rows["diverged_at"].tolist() == [0]


def test_a_step_of_mixed_losses_is_one_graph_and_switches_its_weights_in_place(tmp_path):
    """The general loss traces into the stacked step's one graph (``stacked_step``: CUDA graphs
    capture it), and the deferred weights are the same tensor before and after their switch, so a
    captured step reads them where they lie."""
    labels = tiny_data()[1]
    runs = [spec(method=name, loss=NEW_LOSSES.get(name), **SHORT) for name in ("plain", "ldam_drw", "focal")]
    batches = TensorBatches(*tiny_data(), torch.device("cpu"))
    indices = imbalanced_index_sets(len(runs), labels)
    members = [stacked._Started(trainee, 3, batches.input_shape, batches.labels)
               for trainee in trainees(tmp_path, runs, indices)]
    engine = stacked.Stacked(members, batches, torch.device("cpu"))
    engine.draw(1)
    engine.rows.copy_(engine.ahead[0])
    engine.lr.fill_(runs[0].protocol.lr)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(engine.step_function.run)(engine.rows, engine.lr)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    weights = engine.loss.parameters["weights"]
    address, before = weights.data_ptr(), weights.clone()
    engine.loss.before_step(20)  # LDAM-DRW's switch: round(0.5 * 40)
    assert weights.data_ptr() == address and engine.loss.parameters["weights"] is weights
    assert torch.equal(weights[[0, 2]], before[[0, 2]]) and not torch.equal(weights[1], before[1])


def test_an_augmented_step_is_one_graph_and_reads_its_crops_in_place(tmp_path):
    """With augmentation the step reads each step's offsets and flips from static buffers, as it reads
    its rows (``stacked_step``): still one graph, and the buffers keep their addresses."""
    runs = specs(augment={"crop_padding": 2, "flip": True}, **SHORT)
    batches = TensorBatches(*tiny_data(), torch.device("cpu"))
    members = [stacked._Started(trainee, 3, batches.input_shape, batches.labels)
               for trainee in trainees(tmp_path, runs, index_sets(len(runs), tiny_data()[1]))]
    engine = stacked.Stacked(members, batches, torch.device("cpu"))
    addresses = [engine.offsets.data_ptr(), engine.flips.data_ptr()]
    engine.draw(2)
    engine.step(0, 0, 0.01)
    assert torch.equal(engine.offsets, engine.augment_ahead[0][0]) and torch.equal(engine.flips, engine.augment_ahead[1][0])
    engine.step(1, 1, 0.01)
    assert torch.equal(engine.offsets, engine.augment_ahead[0][1]) and torch.equal(engine.flips, engine.augment_ahead[1][1])
    assert addresses == [engine.offsets.data_ptr(), engine.flips.data_ptr()]
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(engine.step_function.run)(engine.rows, engine.lr, *engine.augmentation)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons


@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU kernels need a C++ compiler (g++)")
def test_a_compiled_augmented_step_trains_what_the_eager_one_does(tmp_path, float64):
    """The step compiled after its 3 eager steps (graphs always) reads each step's crops from its
    buffers: it trains the eager step's weights (test_capturable_step's argument: float64, 20 steps,
    TOLERANCE); a compiled step that kept the crops of its first call would not."""
    runs = specs(augment={"crop_padding": 2, "flip": True}, iterations=20, checkpoints=[20], resume_every=20)
    indices = index_sets(len(runs), tiny_data()[1])
    weights = {}
    for graphs in ("never", "always"):
        torch._dynamo.reset()
        manifests = stacked.train_stacked(trainees(tmp_path / graphs, runs, indices),
                                          TensorBatches(*tiny_data(), torch.device("cpu")), 3, device="cpu",
                                          graphs=graphs)
        assert manifests[0]["engine"]["compiled"] == (graphs == "always")
        weights[graphs] = [last_weights(manifest) for manifest in manifests]
    torch._dynamo.reset()
    for eager, compiled in zip(weights["never"], weights["always"]):
        for name in eager:
            torch.testing.assert_close(compiled[name], eager[name], **TOLERANCE)


LONG_TAIL_METHODS = {
    "baseline": {"sampler": "none"},
    "focal": {"loss": {"name": "focal", "weights": "inverse"}},
    "ldam_drw": {"loss": {"name": "ldam", "weights": "effective_number", "weights_from": 0.5, "scale": 1.0}},
    "logit_adjusted": {"loss": {"name": "logit_adjusted"}},
    "balanced": {"sampler": "class_balanced"},
    "crt": {"two_phase": {"from": "baseline", "sampler": "class_balanced", "reinitialise": True}},
    "tau_norm": {"two_phase": {"from": "baseline", "tau_normalise": 1.0}},
}


def study_job(workdir, monkeypatch, stack):
    """Every bundle of a study of the long-tail methods, in order, as the workflow's rules run them
    (``bundle_job``'s setup); returns the runs' manifests and all score rows."""
    import copy

    from imbalance_study import config, datasets, plan, sampling, source_facts
    from imbalance_study.atomic import write_json

    settings = copy.deepcopy(JOB_CONFIG)
    settings["methods"] = copy.deepcopy(LONG_TAIL_METHODS)
    settings["study"].update(methods=list(LONG_TAIL_METHODS), seeds=[1])
    config.validate(settings)
    study = plan.resolve(settings)
    cell = study.cells[0]
    workdir.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(workdir)
    dataset_path = study.datasets["digits"].path
    dataset = datasets.prepare("digits", source_facts.content_settings(settings["datasets"]["digits"]), dataset_path)
    indices_path = plan.INDICES.format(dataset="digits", profile=cell.profile.name)
    write_json(indices_path, sampling.write_index_files(dataset.train_labels, cell.profile, 40, cell.data_seeds(),
                                                        "random", cell.index_files, cell.index_paths(), cell.context))
    scores = []
    for number, bundle in enumerate(study.bundles):
        bundles.run_bundle(bundle.members(), dataset_path, indices_path, f"scores{number}.csv", f"runs{number}.json",
                           device="cpu", stack=stack, scoring_settings=settings["scoring"], conv="grouped",
                           graphs="never")
        scores.append(pd.read_csv(f"scores{number}.csv"))
    manifests = {run.method.variant: json.loads((workdir / run.directory / "run.json").read_text())
                 for run in study.runs}
    return manifests, pd.concat(scores)


def test_a_study_of_the_long_tail_methods_scores_the_same_in_either_engine(tmp_path, monkeypatch, float64):
    """The new methods through bundles.run_bundle: losses, class-balanced batches and cRT trained by
    either engine (float64: the same scores within TOLERANCE), tau-normalisation by neither."""
    single, single_scores = study_job(tmp_path / "single", monkeypatch, "never")
    together, stacked_scores = study_job(tmp_path / "stacked", monkeypatch, "always")
    assert together["focal"]["engine"]["name"] == "stacked" and single["focal"]["engine"]["name"] == "one_at_a_time"
    assert single["tau_norm"]["engine"]["name"] == together["tau_norm"]["engine"]["name"] == "tau_normalisation"
    assert single["crt"]["trained_layers"] == ["fc2"] and single["tau_norm"]["trained_layers"] == []
    for variant, manifest in single.items():
        assert manifest["fingerprint"] == together[variant]["fingerprint"], variant
        assert manifest["diverged"] is None, variant
    keys = [column for column in single_scores.columns if column != "value"]
    merged = single_scores.merge(stacked_scores, on=keys, suffixes=("_single", "_stacked"), validate="one_to_one")
    assert len(merged) == len(single_scores) == len(stacked_scores)
    assert set(merged["variant"]) == set(LONG_TAIL_METHODS)
    assert (merged["value_single"] - merged["value_stacked"]).abs().max() < TOLERANCE["atol"]
    # The methods differ from the baseline (each trains or rescales something).
    test_auc = single_scores[(single_scores["metric"] == "roc_auc") & (single_scores["split"] == "test")
                             & (single_scores["iteration"] == 80) & (single_scores["group"] == "all")
                             & ~single_scores["thresholded"].astype(bool)]
    values = test_auc.groupby("variant")["value"].first()
    assert all(abs(values[variant] - values["baseline"]) > 1e-6 for variant in LONG_TAIL_METHODS
               if variant != "baseline")


@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU kernels need a C++ compiler (g++)")
def test_a_compiled_step_switches_deferred_weights_as_the_eager_one_does(tmp_path, float64):
    """The step compiled (graphs always: inductor's kernels, as CUDA graphs capture it on a GPU) after
    its 3 eager steps, LDAM-DRW's switch at iteration 10 after that: the compiled step reads the
    weights filled in place, so it trains what the eager step trains (test_capturable_step's
    tolerance argument: float64, 20 steps). Beside it the same run without weights, which the switch
    moves away from by more than 1e-3: a step that kept the weights it was compiled with would not."""
    labels = tiny_data()[1]
    short = dict(iterations=20, checkpoints=[20], resume_every=20)
    drw = {**LDAM_DRW, "weights_from": 0.5}
    # (one name for both: the same seed, data order and batches, so only the switch tells them apart)
    runs = [spec(method="ldam", loss=drw, **short), spec(method="ldam", loss={**drw, "weights": "none"}, **short),
            spec(method="focal", loss=NEW_LOSSES["focal"], **short)]
    index = imbalanced_index_sets(1, labels)[0]
    weights = {}
    for graphs in ("never", "always"):
        manifests = stacked.train_stacked(trainees(tmp_path / graphs, runs, [index] * 3),
                                          TensorBatches(*tiny_data(), torch.device("cpu")), 3, device="cpu",
                                          graphs=graphs)
        assert manifests[0]["engine"]["compiled"] == (graphs == "always")
        weights[graphs] = [last_weights(manifest) for manifest in manifests]
    for eager, compiled in zip(weights["never"], weights["always"]):
        for name in eager:
            torch.testing.assert_close(compiled[name], eager[name], **TOLERANCE)
    assert (weights["never"][0]["fc2.weight"] - weights["never"][1]["fc2.weight"]).abs().max() > 1e-3
