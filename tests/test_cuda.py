"""The engines on a CUDA GPU: they follow the CPU's trajectories, a GPU job trains stacked and scores
like a CPU job, bf16 autocast trains, and resume states keep the GPU's generator.

Skipped where there is no GPU (CI has none). `scripts/gpu_check.sh` runs them on a GPU machine;
BENCHMARKS.md says when they last ran there. TF32 and cuDNN autotuning are turned off here so that
the GPU's float32 arithmetic can be compared with the CPU's to a tight tolerance.
"""

import numpy as np
import pytest
import torch

from imbalance_study import devices, models, rundir, stacked, training
from .test_stacked import at_once, bundle_job, index_sets, last_weights, one_at_a_time, specs
from .test_training import tiny_data, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


@pytest.fixture
def exact_float32(monkeypatch):
    """resolve_device as the engines call it, then TF32 and autotuning off (nondeterministic kernel
    choice and 10-bit products would need a looser tolerance than these tests use)."""
    resolve = devices.resolve_device

    def resolve_without_tf32(name="auto"):
        device = resolve(name)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        return device

    for module in (devices, training, stacked):  # scoring and bundles import it from devices when called
        monkeypatch.setattr(module, "resolve_device", resolve_without_tf32)
    yield
    torch.backends.cudnn.benchmark = False


def assert_same_weights(got: list[dict], expected: list[dict], rtol=1e-3, atol=1e-4):
    for bundled, single in zip(got, expected):
        assert single["fingerprint"] == bundled["fingerprint"]
        reference, weights = last_weights(single), last_weights(bundled)
        for name in reference:
            torch.testing.assert_close(weights[name].cpu(), reference[name].cpu(), rtol=rtol, atol=atol)


def test_stacked_training_on_cuda_follows_the_cpu(tmp_path, exact_float32):
    run_specs = specs(seeds=(1, 2, 3))
    indices = index_sets(len(run_specs), tiny_data()[1])
    on_cpu = one_at_a_time(tmp_path / "cpu", run_specs, indices, device="cpu")
    on_cuda = at_once(tmp_path / "cuda", run_specs, indices, device="cuda")
    assert all(manifest["device"] == "cpu" for manifest in on_cpu)
    assert all(manifest["device"].startswith("cuda") for manifest in on_cuda)
    assert {manifest["engine"]["networks_at_once"] for manifest in on_cuda} == {len(run_specs)}
    assert_same_weights(on_cuda, on_cpu)


def test_one_at_a_time_on_cuda_follows_the_cpu(tmp_path, exact_float32):
    images, labels = tiny_data()
    run = specs(seeds=(4,), methods=("baseline",))[0]
    indices = index_sets(1, labels)[0]
    manifests = [train(run, images, labels, indices, tmp_path / device, device=device) for device in ("cpu", "cuda")]
    assert manifests[1]["device"].startswith("cuda")
    assert_same_weights(manifests[1:], manifests[:1])


def test_two_phase_stacked_on_cuda_follows_the_cpu(tmp_path, exact_float32):
    labels = tiny_data()[1]
    first_specs = specs(methods=("over",))
    indices = index_sets(len(first_specs), labels)
    phase_ones = one_at_a_time(tmp_path / "first", first_specs, indices, device="cpu")
    second_specs = specs(methods=("twophase_over",), lr=0.005)
    imbalanced = index_sets(len(second_specs), labels, size=30)
    on_cpu = one_at_a_time(tmp_path / "cpu", second_specs, imbalanced, phase_ones, device="cpu")
    on_cuda = at_once(tmp_path / "cuda", second_specs, imbalanced, phase_ones, device="cuda")
    assert_same_weights(on_cuda, on_cpu)


def test_bf16_autocast_trains_on_cuda_in_both_engines(tmp_path):
    images, labels = tiny_data()
    run_specs = specs(seeds=(1, 2), methods=("baseline",), precision="bf16", iterations=120, checkpoints=[120])
    indices = [np.arange(len(labels))] * len(run_specs)
    stacked_runs = at_once(tmp_path / "stacked", run_specs, indices, device="cuda")
    single = train(run_specs[0], images, labels, indices[0], tmp_path / "single", device="cuda")
    inputs = models.to_input(torch.from_numpy(images))
    for manifest in [*stacked_runs, single]:
        model = models.build("digits_cnn", 3, (8, 8))
        rundir.load_checkpoint(manifest["checkpoints"][-1], model, manifest["fingerprint"])
        model.eval()
        with torch.no_grad():
            accuracy = (model(inputs).argmax(dim=1).numpy() == labels).mean()
        assert accuracy >= 0.9, manifest["checkpoints"][-1]["path"]


def test_resume_states_keep_the_gpu_generator():
    torch.cuda.manual_seed(11)
    states = devices.rng_states(CUDA)
    expected = torch.rand(4, device=CUDA)
    torch.rand(100, device=CUDA)  # move the generator on
    devices.restore_rng_states(states, CUDA)
    assert torch.equal(torch.rand(4, device=CUDA), expected)


def test_a_cuda_job_trains_stacked_and_scores_like_a_cpu_job(tmp_path, monkeypatch, exact_float32):
    """bundles.run_bundle, as the rule train_bundle calls it: on CUDA with stack auto the runs are
    trained stacked, and the score rows match a CPU job's (stack never) to float tolerance."""
    cpu_timings, cpu = bundle_job(tmp_path / "cpu", monkeypatch, "cpu", "never")
    cuda_timings, cuda = bundle_job(tmp_path / "cuda", monkeypatch, "cuda", "auto")
    assert cpu_timings["engine"] == "one_at_a_time"
    assert cuda_timings["engine"] == "stacked" and cuda_timings["device"].startswith("cuda")
    keys = ["seed", "variant", "iteration", "split", "thresholded", "tau", "metric", "class", "group"]
    merged = cpu.merge(cuda, on=keys, suffixes=("_cpu", "_cuda"), validate="one_to_one")
    assert len(merged) == len(cpu) == len(cuda) > 100
    gap = (merged["value_cpu"] - merged["value_cuda"]).abs()
    continuous = merged["metric"].isin(["roc_auc", "loss", "silhouette"])
    assert gap[continuous].max() < 1e-3
    # A prediction near a tie may flip between devices: at most one example of a class, which is
    # 1/20 of a test class and 1/8 of a minority class of the training set (40 / rho 5).
    discrete = ~continuous & (merged["class"] >= 0)
    assert gap[discrete & (merged["split"] == "test")].max() <= 1 / 20 + 1e-9
    assert gap[discrete & (merged["split"] == "train")].max() <= 1 / 8 + 1e-9
