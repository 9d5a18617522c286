"""What makes the engines fast on a GPU, checked on the CPU through proxies (issue 18): the kernels a
step launches (operators dispatched), the host's work at a stop, and honest timings."""

import numpy as np
import pytest
import torch

from imbalance_study import probes, stacked
from imbalance_study.batches import EpochShuffler, TensorBatches, upload
from imbalance_study.loop import Trainee
from imbalance_study.optim import CaffeSGD, make_optimizer, state_tensors, update_
from imbalance_study.protocol import Protocol

from .test_training import tiny_data


@pytest.mark.parametrize("size", [5, 37, 64, 200])
def test_a_stops_batches_drawn_in_one_piece_are_those_drawn_batch_by_batch(size):
    """Same examples, same order, same reshuffles at epoch ends: resumes stay bit-identical."""
    vectorised = EpochShuffler(np.arange(size), np.random.default_rng(3))
    one_by_one = EpochShuffler(np.arange(size), np.random.default_rng(3))
    for steps in (1, 7, 13, 0, 3, 40):
        drawn = vectorised.next_batches(steps, 16)
        assert drawn.shape == (steps, 16)
        expected = [one_by_one.next_batch(16) for _ in range(steps)]
        assert np.array_equal(drawn, np.array(expected).reshape(steps, 16))
        assert (vectorised.epoch, vectorised.position) == (one_by_one.epoch, one_by_one.position)
    assert vectorised.epoch > 3  # the draws crossed several epoch ends


def test_upload_to_the_cpu_is_the_array_itself():
    rows = np.arange(12).reshape(3, 4)
    tensor = upload(rows, torch.device("cpu"))
    assert tensor.data_ptr() == torch.from_numpy(rows).data_ptr()


def reference_caffe_step(weights, gradients, velocities, lr, momentum, weight_decay):
    """Caffe's update as it was written before the foreach form, parameter by parameter."""
    for name in weights:
        update = gradients[name].add(weights[name], alpha=weight_decay).mul_(lr)
        if name in velocities:
            update.add_(velocities[name], alpha=momentum)
        velocities[name] = update
        weights[name] = weights[name] - update


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_caffe_sgd_in_foreach_form_is_bit_identical_and_updates_in_place(dtype):
    generator = torch.Generator().manual_seed(0)
    shapes = {"a": (3, 4), "b": (4,), "c": (2, 2, 3)}
    parameters = {name: torch.randn(shape, generator=generator, dtype=dtype).requires_grad_() for name, shape in
                  shapes.items()}
    weights = {name: tensor.detach().clone() for name, tensor in parameters.items()}
    optimizer, velocities = CaffeSGD(list(parameters.values()), lr=0.1, momentum=0.9, weight_decay=5e-4), {}
    for step, lr in enumerate([0.1, 0.07, 0.05, 0.01]):  # a changing rate, as Caffe's inv policy gives
        gradients = {name: torch.randn(shape, generator=generator, dtype=dtype) for name, shape in shapes.items()}
        for name, parameter in parameters.items():
            parameter.grad = gradients[name].clone()
        optimizer.param_groups[0]["lr"] = lr
        optimizer.step()
        reference_caffe_step(weights, gradients, velocities, lr, 0.9, 5e-4)
        for name, parameter in parameters.items():
            assert torch.equal(parameter.detach(), weights[name]), (step, name)
            assert torch.equal(optimizer.state[parameter]["velocity"], velocities[name]), (step, name)
        if step == 0:
            buffers = {name: optimizer.state[parameter]["velocity"].data_ptr() for name, parameter in parameters.items()}
    assert buffers == {name: optimizer.state[parameter]["velocity"].data_ptr() for name, parameter in parameters.items()}


def optimizer_operators(n_parameters: int) -> int:
    from torch.profiler import ProfilerActivity, profile

    parameters = [torch.randn(4, requires_grad=True) for _ in range(n_parameters)]
    optimizer = CaffeSGD(parameters, lr=0.1, momentum=0.9, weight_decay=5e-4)
    for parameter in parameters:
        parameter.grad = torch.ones(4)
    optimizer.step()  # the first step creates the velocities
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        optimizer.step()
    return probes.dispatched(profiler.events())


def test_caffe_sgds_operators_per_step_do_not_grow_with_the_number_of_parameters():
    assert optimizer_operators(16) == optimizer_operators(4) <= 12


ADAM = {"optimizer": "adamw", "betas": [0.9, 0.999], "eps": 1e-8}


def stacked_adam_operators(n_parameters: int) -> int:
    """Operators of the stacked engine's Adam update (``optim.update_``) with a tensor learning rate."""
    from torch.profiler import ProfilerActivity, profile

    protocol = Protocol.from_config({"iterations": 10, "batch_size": 8, "lr": 0.01, "momentum": 0.9,
                                     "weight_decay": 0.01, "momentum_form": "caffe", "lr_policy": {"name": "fixed"},
                                     "checkpoints": [10], "resume_every": 10, "precision": "fp32", **ADAM})
    parameters = [torch.randn(4) for _ in range(n_parameters)]
    state = state_tensors(make_optimizer(protocol, parameters), protocol)
    lr, gradients = torch.tensor(0.01), [torch.ones(4) for _ in parameters]
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        update_(protocol, parameters, gradients, state, lr)
    return probes.dispatched(profiler.events())


def test_the_stacked_adam_updates_operators_do_not_grow_with_the_number_of_parameters():
    """Eleven foreach operations, and nine on the 0-d step count and learning rate."""
    assert stacked_adam_operators(16) == stacked_adam_operators(4) <= 20


@pytest.mark.parametrize("optimizer", [{}, ADAM], ids=["sgd", "adamw"])
def test_a_stacked_steps_operators_do_not_grow_with_the_number_of_networks(tmp_path, optimizer):
    """The kernels a GPU launches per step: the same for 2 and 8 stacked networks."""
    images, labels = tiny_data()
    batches = TensorBatches(images, labels, torch.device("cpu"))
    counts = {networks: probes.operators_per_step(batches, labels, networks, tmp_path, model="digits_cnn",
                                                  batch_size=8, **optimizer) for networks in (2, 8)}
    assert counts[2] > 50  # a real step was counted
    assert counts[8] <= counts[2] + 2, counts


def test_a_stacked_runs_training_time_is_its_share_of_its_groups(tmp_path):
    """Each run records the group's time over its networks, so a job's runs add up to its training."""
    images, labels = tiny_data()
    runs = [probes.probe_run(seed, 20, model="digits_cnn", batch_size=8) for seed in range(4)]
    manifests = stacked.train_stacked([Trainee(run, np.arange(len(labels)), tmp_path / str(seed))
                                       for seed, run in enumerate(runs)],
                                      TensorBatches(images, labels, torch.device("cpu")), 3, device="cpu")
    group = {manifest["engine"]["group_train_seconds"] for manifest in manifests}
    assert len(group) == 1 and group.pop() > 0
    total = sum(manifest["train_seconds"] for manifest in manifests)
    # Each share is rounded to the millisecond in its manifest.
    assert total == pytest.approx(manifests[0]["engine"]["group_train_seconds"], abs=4 * 0.001 + 0.001)
