"""The stacked engine's step can be captured (issue 18): ``torch.compile`` traces it into one graph,
and the compiled step trains the weights the eager one does.

The compiled kernels (inductor's, here C++ on the CPU; Triton's on CUDA) sum in other orders than
the eager ones, so the weights are compared in float64, at ``test_stacked``'s tolerance and by its
argument: a reordered sum of n terms differs by at most about n * 1.1e-16 of its magnitude (the
largest sums of digits_cnn at batch 8, conv1's weight gradient over 8 examples of 8 x 8 positions,
have 512 terms: about 6e-14), and 20 SGD steps do not amplify that past 1e-9 (the weights differ by
about 2e-16 after them), while a wrong gradient, batch, learning rate or momentum moves the weights by
more than 1e-3 (checked: the compiled steps move them that far). Inductor compiles float64 kernels on
the CPU, so no float32 tolerance is needed. It needs a C++ compiler (g++ here; the test is skipped
without one). The eager step against the old ``losses.sum().backward()`` path: the gradients are
checked here bit for bit, and ``tests/test_stacked.py`` compares whole trainings with the
one-at-a-time engine (which steps by ``backward()`` and ``torch.optim``) at 1e-9.
"""

import shutil

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from imbalance_study import stacked, stacked_step
from imbalance_study.batches import TensorBatches
from imbalance_study.optim import momentum_key

from .test_stacked import TOLERANCE, index_sets, last_weights, specs, trainees
from .test_training import tiny_data


def engine_of(tmp_path, graphs="never", **protocol):
    """A stacked engine of 3 digits_cnn runs, its first batch in its row buffer."""
    images, labels = tiny_data()
    runs = specs(seeds=(1, 2, 3), methods=("baseline",), **protocol)
    batches = TensorBatches(images, labels, torch.device("cpu"))
    members = [stacked._Started(trainee, 3, batches.input_shape)
               for trainee in trainees(tmp_path, runs, index_sets(len(runs), labels))]
    engine = stacked.Stacked(members, batches, torch.device("cpu"), graphs=graphs)
    engine.draw(1)
    engine.rows.copy_(engine.ahead[0])
    engine.lr.fill_(runs[0].protocol.lr)
    return engine


def breaks(explanation) -> str:
    return "\n".join(f"{reason.reason} at {reason.user_stack[-1] if reason.user_stack else '?'}"
                     for reason in explanation.break_reasons)


@pytest.mark.parametrize("protocol", [{}, {"momentum_form": "pytorch"}, {"momentum_form": "pytorch", "momentum": 0.0},
                                      {"precision": "bf16"}, {"lr": 0.02, "weight_decay": 0.0}],
                         ids=["caffe", "pytorch", "pytorch_no_momentum", "bf16", "no_weight_decay"])
def test_the_stacked_step_is_one_graph(tmp_path, protocol):
    """``torch._dynamo.explain`` of the function the engine compiles: no graph break."""
    engine = engine_of(tmp_path, **protocol)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(engine.step_function.run)(engine.rows, engine.lr)
    assert explanation.graph_break_count == 0, breaks(explanation)
    assert explanation.graph_count == 1, breaks(explanation)


def test_a_second_phases_step_is_one_graph(tmp_path):
    """Two phases: the step differentiates only the layers the second phase trains."""
    labels = tiny_data()[1]
    phase_ones = stacked.train_stacked(trainees(tmp_path / "first", specs(methods=("over",)), index_sets(2, labels)),
                                       TensorBatches(*tiny_data(), torch.device("cpu")), 3, device="cpu")
    runs = specs(methods=("twophase_over",), lr=0.005)
    batches = TensorBatches(*tiny_data(), torch.device("cpu"))
    members = [stacked._Started(trainee, 3, batches.input_shape)
               for trainee in trainees(tmp_path, runs, index_sets(2, labels), phase_ones)]
    engine = stacked.Stacked(members, batches, torch.device("cpu"))
    assert engine.trainable_names == ["fc2.weight", "fc2.bias"]
    engine.draw(1)
    engine.rows.copy_(engine.ahead[0])
    engine.lr.fill_(runs[0].protocol.lr)
    frozen, trained = engine.parameters["conv1.weight"].clone(), engine.parameters["fc2.weight"].clone()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(engine.step_function.run)(engine.rows, engine.lr)
    assert explanation.graph_break_count == 0, breaks(explanation)
    assert torch.equal(engine.parameters["conv1.weight"], frozen)
    assert not torch.equal(engine.parameters["fc2.weight"], trained)


@pytest.mark.parametrize("momentum_form", ["caffe", "pytorch"])
def test_the_functional_gradients_are_those_of_backward(tmp_path, monkeypatch, float64, momentum_form):
    """``torch.func.grad_and_value`` of the summed losses gives, bit for bit, the gradients that
    ``losses.sum().backward()`` accumulates; the step updates the optimiser's own tensors in place."""
    engine = engine_of(tmp_path, momentum_form=momentum_form)
    inputs, targets = engine.batches.gather(engine.rows)
    leaves = {name: tensor.clone().requires_grad_() for name, tensor in zip(engine.trainable_names, engine.trainable)}
    with engine.weights(leaves):
        engine.losses(inputs, targets).sum().backward()
    gradients = {}

    def kept(protocol, parameters, grads, velocities, lr):
        gradients.update({name: grad.clone() for name, grad in zip(engine.trainable_names, grads)})

    with monkeypatch.context() as patched:
        patched.setattr(stacked_step, "update_", kept)
        stacked_step.train_step(engine, engine.rows, engine.lr)
    for name, leaf in leaves.items():
        assert torch.equal(gradients[name], leaf.grad), name
    # The momentum the step updates is the optimiser's (what saves write), updated where it lies.
    key = momentum_key(engine.protocol)
    held = [engine.optimizer.state[parameter][key] for parameter in engine.trainable]
    addresses = [tensor.data_ptr() for tensor in [*engine.trainable, *held]]
    for _ in range(3):
        engine.step_function(engine.rows, engine.lr)
    assert all(tensor is velocity for tensor, velocity in zip(held, engine.velocities))
    assert addresses == [tensor.data_ptr() for tensor in [*engine.trainable, *held]]
    assert float(held[0].abs().max()) > 0


def test_graphs_auto_compiles_on_cuda_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not stacked_step.compiles("auto", cpu) and not stacked_step.compiles("never", cuda)
    assert stacked_step.compiles("always", cpu)
    with pytest.raises(ValueError, match="engine.graphs: 'sometimes' is not one of auto, never, always"):
        stacked_step.compiles("sometimes", cpu)


@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU kernels need a C++ compiler (g++)")
@pytest.mark.parametrize("momentum_form", ["caffe", "pytorch"])
def test_the_compiled_step_trains_the_weights_the_eager_step_does(tmp_path, monkeypatch, float64, momentum_form):
    """20 iterations of 3 stacked digits_cnn runs: 3 eager steps, then 17 compiled (inductor, the
    backend of mode "reduce-overhead"; on the CPU without CUDA graphs) against 20 eager ones."""
    images, labels = tiny_data()
    runs = specs(seeds=(1, 2, 3), methods=("baseline",), momentum_form=momentum_form, iterations=20,
                 checkpoints=[10, 20], resume_every=10)
    indices = index_sets(len(runs), labels)
    calls = {"compiled": 0}
    compile_step = stacked_step.Step._compiled

    def counted(self):
        compiled = compile_step(self)

        def call(*arguments):
            calls["compiled"] += 1
            return compiled(*arguments)
        return call

    monkeypatch.setattr(stacked_step.Step, "_compiled", counted)
    torch._dynamo.reset()
    counters.clear()
    trained = {graphs: stacked.train_stacked(trainees(tmp_path / graphs, runs, indices),
                                             TensorBatches(images, labels, torch.device("cpu")), 3, device="cpu",
                                             graphs=graphs) for graphs in ("always", "never")}
    assert calls["compiled"] == 20 - stacked_step.WARMUP
    # One graph, compiled once for all 17 steps (no break, no recompilation at the stops between them).
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"], dict(counters)
    for compiled, eager in zip(trained["always"], trained["never"]):
        assert compiled["fingerprint"] == eager["fingerprint"]
        for name, tensor in last_weights(eager).items():
            assert tensor.dtype == torch.float64
            torch.testing.assert_close(last_weights(compiled)[name], tensor, **TOLERANCE)
        # The compiled steps (4 to 20) moved the weights: the match is not that of untrained networks.
        at_10 = torch.load(compiled["checkpoints"][0]["path"], weights_only=True)["model"]
        assert max(float((last_weights(compiled)[name] - at_10[name]).abs().max()) for name in at_10) > 1e-3
    torch._dynamo.reset()


def test_the_row_buffer_takes_each_steps_batch(tmp_path, monkeypatch):
    """The step reads its batch from the engine's static buffer, each step's rows copied into it."""
    engine = engine_of(tmp_path)
    address = engine.rows.data_ptr()
    engine.draw(2)
    seen = []

    def seeing(engine_, rows, lr):
        seen.append((rows.data_ptr(), rows.clone()))
        return engine_.last_losses

    monkeypatch.setattr(stacked_step, "train_step", seeing)
    for step in range(2):
        engine.step(step, step, 0.01)
    assert [pointer for pointer, _ in seen] == [address, address]
    for step, (_, rows) in enumerate(seen):
        assert np.array_equal(rows.numpy(), engine.ahead[step].numpy())
    # The learning rate in the weights' dtype: the rounding a float rate gets in the update's kernels.
    assert engine.lr.dtype == torch.float32 and float(engine.lr) == float(np.float32(0.01))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("momentum_form", ["caffe", "pytorch"])
def test_graphs_auto_captures_the_step_on_cuda_and_trains_the_eager_weights(tmp_path, monkeypatch, float64,
                                                                           momentum_form):
    """On CUDA ``engine.graphs: auto`` compiles the step after its warm-up and replays it as CUDA
    graphs (a skipped capture raises here), reading every tensor where it lies (none is copied into
    the graph at each replay), and trains the weights the eager step does (float64, as above; cuDNN's
    autotuning off so that both runs pick the same convolution kernels)."""
    images, labels = tiny_data()
    runs = specs(seeds=(1, 2, 3), methods=("baseline",), momentum_form=momentum_form, iterations=20,
                 checkpoints=[10, 20], resume_every=10)
    indices = index_sets(len(runs), labels)
    monkeypatch.setattr(torch._inductor.config.triton, "cudagraph_or_error", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(stacked, "resolve_device", lambda name: torch.device(name))
    torch._dynamo.reset()
    counters.clear()
    trained = {graphs: stacked.train_stacked(trainees(tmp_path / graphs, runs, indices),
                                             TensorBatches(images, labels, torch.device("cuda")), 3, device="cuda",
                                             graphs=graphs) for graphs in ("auto", "never")}
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"], dict(counters)
    assert counters["inductor"]["cudagraph_recorded_non_static_inputs"] == 0, dict(counters["inductor"])
    for compiled, eager in zip(trained["auto"], trained["never"]):
        for name, tensor in last_weights(eager).items():
            torch.testing.assert_close(last_weights(compiled)[name], tensor, **TOLERANCE)
    torch._dynamo.reset()
