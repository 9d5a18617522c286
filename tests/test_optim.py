"""Adam and AdamW beside SGD, linear warm-up, and protocols given in epochs.

Float64 comparisons and their tolerances: Adam's update ``lr * m_hat / (sqrt(v_hat) + eps)`` is
computed here (``optim.adam_update_``, the stacked engine's) with the same operations as PyTorch's
for the moments, but with the bias corrections from a step-count tensor instead of Python floats and
the final product in another order: each update differs by a few roundings (2^-52 relative, about
2.2e-16) of its own size, which is at most about ``lr`` (the normalised step ``m_hat / sqrt(v_hat)``
is at most about 1 in magnitude). N steps add up to ``N * ROUNDINGS * 2.2e-16 * lr`` at most, which
``update_tolerance`` allows; a wrong formula (another bias correction, L2 against decoupled decay)
moves a weight by a sizeable fraction of ``lr`` per step.
"""

import dataclasses

import numpy as np
import pytest
import torch

from imbalance_study import config as config_module
from imbalance_study import stacked
from imbalance_study.optim import (adam_update_, make_optimizer, network_state, restore_stacked_state,
                                   saved_network_state, stacked_state, state_tensors, update_)
from imbalance_study.protocol import AugmentedProtocol, ExtendedProtocol, Protocol

from .test_stacked import at_once, index_sets, interrupted_at_once, last_weights, one_at_a_time, specs
from .test_training import tiny_data

ADAM = {"optimizer": "adam", "betas": [0.9, 0.999], "eps": 1e-8}
UNIT_ROUNDING = 2.0 ** -52
ROUNDINGS = 16  # an update's roundings that may differ: bias corrections, sqrt, division, products


def settings(**overrides) -> dict:
    """A protocol's settings as the schema fills them in (every default present)."""
    base = {"iterations": 100, "batch_size": 16, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
            "momentum_form": "caffe", "lr_policy": {"name": "fixed", "warmup": 0}, "checkpoints": [50],
            "resume_every": 500, "precision": "fp32", "optimizer": "sgd", "betas": [0.9, 0.999], "eps": 1e-8}
    if "epochs" in overrides:
        del base["iterations"]
        base["checkpoints"] = [1]
    base.update(overrides)
    return base


# ---- Protocols: today's unchanged, epochs, warm-up ------------------------------------------------

def test_a_protocol_of_before_resolves_to_the_same_object_and_fingerprint_fields():
    """SGD in iterations without warm-up: a plain Protocol whose asdict (a job's params, a run's
    fingerprint) has exactly the fields it had before Adam, warm-up and epochs existed."""
    protocol = Protocol.from_config(settings(checkpoints={"spacing": "log", "count": 3, "first": 10}))
    assert type(protocol) is Protocol
    assert dataclasses.asdict(protocol) == {
        "iterations": 100, "batch_size": 16, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
        "lr_policy": {"name": "fixed"}, "momentum_form": "caffe", "checkpoints": (10, 32, 100),
        "resume_every": 500, "precision": "fp32"}
    assert Protocol.from_dict(dataclasses.asdict(protocol)) == protocol
    # Settings from before the keys existed (hand-built ones, resolved params) read the same.
    old = {key: value for key, value in settings().items() if key not in ("optimizer", "betas", "eps")}
    old["lr_policy"] = {"name": "fixed"}
    assert Protocol.from_config(old) == Protocol.from_config(settings())
    assert Protocol.from_config(settings(), examples=77) == Protocol.from_config(settings())


def test_adam_and_epochs_enter_the_fingerprint_only_where_they_are_used():
    adam = Protocol.from_config(settings(**ADAM))
    assert isinstance(adam, ExtendedProtocol) and (adam.betas, adam.eps) == ((0.9, 0.999), 1e-8)
    fields = dataclasses.asdict(adam)
    assert {key: fields[key] for key in ("optimizer", "betas", "eps", "epochs", "examples")} == {
        "optimizer": "adam", "betas": (0.9, 0.999), "eps": 1e-8, "epochs": None, "examples": None}
    assert dataclasses.asdict(Protocol.from_config(settings(**{**ADAM, "betas": [0.8, 0.99]}))) != fields
    # Round trip through a job's params (JSON turns tuples into lists).
    assert Protocol.from_dict({**fields, "betas": [0.9, 0.999], "checkpoints": list(fields["checkpoints"])}) == adam
    # SGD ignores Adam's settings: changing them changes no SGD run.
    assert Protocol.from_config(settings(betas=[0.5, 0.5], eps=1.0)) == Protocol.from_config(settings())


def test_augmentation_enters_the_fingerprint_only_when_on():
    """augment off (the schema's defaults, crop_padding 0 and flip false) leaves a protocol exactly as
    before augmentation existed, plain or extended; on, it is carried as given."""
    before = Protocol.from_config(settings())
    off = Protocol.from_config(settings(augment={"crop_padding": 0, "flip": False}))
    assert type(off) is Protocol and off == before and dataclasses.asdict(off) == dataclasses.asdict(before)
    adam_off = Protocol.from_config(settings(**ADAM, augment={"crop_padding": 0, "flip": False}))
    assert type(adam_off) is ExtendedProtocol and "augment" not in dataclasses.asdict(adam_off)
    assert dataclasses.asdict(adam_off) == dataclasses.asdict(Protocol.from_config(settings(**ADAM)))
    on = Protocol.from_config(settings(augment={"crop_padding": 4, "flip": True}))
    fields = dataclasses.asdict(on)
    assert isinstance(on, AugmentedProtocol) and fields["augment"] == {"crop_padding": 4, "flip": True}
    assert {key: fields[key] for key in dataclasses.asdict(before)} == dataclasses.asdict(before)
    assert Protocol.from_dict({**fields, "checkpoints": list(fields["checkpoints"])}) == on  # a job's params
    flip_only = Protocol.from_config(settings(augment={"crop_padding": 0, "flip": True}))
    assert flip_only.augment == {"crop_padding": 0, "flip": True} and flip_only != on
    with pytest.raises(ValueError, match="augment.crop_padding: -1"):
        Protocol.from_config(settings(augment={"crop_padding": -1, "flip": False}))


def augmented_study(source="sklearn_digits", **protocol):
    spec = {"source": source, "train_per_class": 30, "test_per_class": 10, "model": "digits_cnn", "protocol": "aug"}
    if source == "sklearn_breast_cancer":
        spec.update(train_per_class=100, model="mlp")
    return {"datasets": {"data": spec},
            "protocols": {"aug": {"iterations": 20, "batch_size": 8, "lr": 0.01, **protocol}},
            "methods": {"baseline": {"sampler": "none"}, "over": {"sampler": "over"}},
            "study": {"datasets": ["data"], "seeds": [1], "methods": ["baseline", "over"],
                      "profiles": {"step": {"mu": [0.5], "rho": [2]}}}}


def test_the_config_check_fills_augments_defaults_and_refuses_it_for_tables():
    study = augmented_study()
    config_module.validate(study)
    assert study["protocols"]["aug"]["augment"] == {"crop_padding": 0, "flip": False}
    config_module.validate(augmented_study(augment={"crop_padding": 2, "flip": True}))
    with pytest.raises(config_module.ConfigError, match=r"protocols.aug.augment: random crops and flips apply to "
                                                        r"in-memory image datasets only, not to dataset 'data' "
                                                        r"\(source sklearn_breast_cancer: its examples are rows"):
        config_module.validate(augmented_study("sklearn_breast_cancer", augment={"crop_padding": 0, "flip": True}))
    table = augmented_study("sklearn_breast_cancer")
    table["methods"]["over"]["train"] = {"augment": {"crop_padding": 1}}
    with pytest.raises(config_module.ConfigError, match=r"methods.over.train.augment: random crops") as error:
        config_module.validate(table)
    assert "protocols.aug.augment" not in str(error.value)


def test_an_epoch_protocol_resolves_with_the_training_sets_size():
    """3 epochs of 50 examples in batches of 16: epoch e ends after ceil(50 e / 16) updates = 4, 7, 10."""
    protocol = Protocol.from_config(settings(epochs=3, checkpoints={"spacing": "epoch"},
                                             lr_policy={"name": "multistep", "gamma": 0.1, "steps": [2],
                                                        "warmup": 1}), examples=50)
    assert (protocol.iterations, protocol.checkpoints) == (10, (4, 7, 10))
    assert protocol.lr_policy == {"name": "multistep", "gamma": 0.1, "steps": [7], "warmup": 4}
    assert (protocol.epochs, protocol.examples) == (3, 50)
    assert Protocol.from_dict(dataclasses.asdict(protocol)) == protocol
    listed = Protocol.from_config(settings(epochs=3, checkpoints=[1, 3]), examples=50)
    assert listed.checkpoints == (4, 10)
    # Log spacing: first converted (1 epoch: 4 updates), then spaced over iterations.
    logged = Protocol.from_config(settings(epochs=3, checkpoints={"spacing": "log", "count": 3, "first": 1}),
                                  examples=50)
    assert logged.checkpoints == (4, 6, 10)  # geomspace(4, 10, 3) = 4, 6.32, 10
    # An exact number of batches per epoch: no rounding.
    assert Protocol.from_config(settings(epochs=3), examples=64).iterations == 12
    # Another training-set size is another protocol (and fingerprint).
    assert Protocol.from_config(settings(epochs=3), examples=51) != Protocol.from_config(settings(epochs=3), examples=50)


@pytest.mark.parametrize(("overrides", "examples", "message"), [
    ({"epochs": 3}, None, "epochs: a protocol in epochs .3. resolves to iterations only with the size of the run's "
                          "training set"),
    ({"epochs": 3, "iterations": 10}, 50, r"iterations, epochs: give exactly one of them"),
    ({"checkpoints": {"spacing": "epoch"}}, None, "spacing 'epoch' needs a protocol in epochs"),
    ({"epochs": 3, "checkpoints": {"spacing": "epoch", "count": 3}}, 50, "it takes no count or first"),
    ({"epochs": 3, "checkpoints": [4]}, 50, "checkpoints: 4 lies outside 1..3 epochs"),
    ({"epochs": 3, "lr_policy": {"name": "multistep", "gamma": 0.1, "steps": [5]}}, 50,
     "lr_policy.steps: 5 lies outside 1..3 epochs"),
    ({"lr_policy": {"name": "fixed", "warmup": 101}}, None, "lr_policy.warmup: 101 lies outside 1..100 iterations"),
])
def test_protocol_errors_name_the_key(overrides, examples, message):
    with pytest.raises(ValueError, match=message):
        Protocol.from_config(settings(**overrides), examples=examples)


def test_an_epoch_protocol_is_checked_in_epochs_without_its_sets_size():
    Protocol.check(settings(epochs=3, checkpoints=[1, 3]))
    with pytest.raises(ValueError, match="checkpoints: 4 lies outside 1..3 epochs"):
        Protocol.check(settings(epochs=3, checkpoints=[4]))


def test_linear_warm_up_by_hand():
    """Update i (from 0) uses the policy's rate times min(1, (i + 1) / W)."""
    protocol = Protocol.from_config(settings(lr_policy={"name": "multistep", "gamma": 0.1, "steps": [6],
                                                        "warmup": 4}))
    assert [protocol.learning_rate(i) for i in range(8)] == pytest.approx(
        [0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.01, 0.01], rel=1e-15)
    inv = Protocol.from_config(settings(lr_policy={"name": "inv", "gamma": 0.01, "power": 0.75, "warmup": 2}))
    assert inv.learning_rate(0) == pytest.approx(0.5 * 0.1, rel=1e-15)
    assert inv.learning_rate(1) == pytest.approx(0.1 * (1 + 0.01) ** -0.75, rel=1e-15)


def test_warm_up_in_epochs_meets_cao_et_als_per_epoch_ramp_at_each_epochs_last_update():
    """LDAM-DRW's code sets lr * (epoch + 1) / 5 for epochs 0..4; 10 updates per epoch here."""
    protocol = Protocol.from_config(settings(epochs=20, lr_policy={"name": "fixed", "warmup": 5}), examples=160)
    assert protocol.lr_policy["warmup"] == 50
    for epoch in range(5):
        assert protocol.learning_rate(10 * epoch + 9) == pytest.approx(0.1 * (epoch + 1) / 5, rel=1e-15)
    assert protocol.learning_rate(50) == 0.1


def test_the_schema_holds_the_defaults_and_the_config_check_reads_adam():
    study = {"datasets": {"digits": {"source": "sklearn_digits", "train_per_class": 30, "test_per_class": 10,
                                     "model": "digits_cnn", "protocol": "adam"}},
             "protocols": {"adam": {"iterations": 20, "batch_size": 8, "lr": 0.001, "optimizer": "adamw",
                                    "lr_policy": {"name": "fixed", "warmup": 5}}},
             "methods": {"baseline": {"sampler": "none"}},
             "study": {"datasets": ["digits"], "seeds": [1], "methods": ["baseline"],
                       "profiles": {"step": {"mu": [0.5], "rho": [5]}}}}
    config_module.validate(study)
    protocol = Protocol.from_config(study["protocols"]["adam"])
    assert (protocol.optimizer, protocol.betas, protocol.eps) == ("adamw", (0.9, 0.999), 1e-8)
    assert protocol.lr_policy == {"name": "fixed", "warmup": 5}
    study["protocols"]["adam"]["optimizer"] = "rmsprop"
    with pytest.raises(config_module.ConfigError, match="protocols.adam.optimizer: 'rmsprop' is not one of"):
        config_module.validate(study)


# ---- The update: stacked, capturable, exactly PyTorch's per network ---------------------------------

def update_tolerance(steps: int, lr: float) -> dict:
    return dict(rtol=0, atol=steps * ROUNDINGS * UNIT_ROUNDING * lr * 2)  # weights and their updates


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_the_stacked_update_is_pytorchs_per_network(optimizer, weight_decay):
    """K = 3 networks stacked, updated by ``update_`` with a tensor learning rate that changes (a
    warm-up), against each network alone under ``torch.optim.Adam``/``AdamW`` (single-tensor form)."""
    generator = torch.Generator().manual_seed(0)
    shapes, networks, steps = {"w": (4, 3), "b": (4,)}, 3, 25
    protocol = Protocol.from_config(settings(**{**ADAM, "optimizer": optimizer}, weight_decay=weight_decay))
    stacked_weights = {name: torch.randn((networks, *shape), generator=generator, dtype=torch.float64)
                       for name, shape in shapes.items()}
    holder = make_optimizer(protocol, list(stacked_weights.values()))
    state = state_tensors(holder, protocol)
    alone = [{name: tensor[k].clone().requires_grad_() for name, tensor in stacked_weights.items()}
             for k in range(networks)]
    reference = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    optimizers = [reference(list(weights.values()), lr=0.1, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=weight_decay, foreach=False) for weights in alone]
    lr = torch.zeros((), dtype=torch.float64)
    addresses = [tensor.data_ptr() for tensor in [*stacked_weights.values(), *state]]
    for step in range(steps):
        rate = 0.1 * min(1.0, (step + 1) / 10)
        lr.fill_(rate)
        gradients = {name: torch.randn(tensor.shape, generator=generator, dtype=torch.float64) * 10 ** (step % 3 - 1)
                     for name, tensor in stacked_weights.items()}
        for k, (weights, single) in enumerate(zip(alone, optimizers)):
            for name, parameter in weights.items():
                parameter.grad = gradients[name][k].clone()
            single.param_groups[0]["lr"] = rate
            single.step()
        update_(protocol, list(stacked_weights.values()), list(gradients.values()), state, lr)
    assert [tensor.data_ptr() for tensor in [*stacked_weights.values(), *state]] == addresses  # in place
    assert state[-1].item() == steps and all(holder.state[p]["step"] is state[-1] for p in stacked_weights.values())
    for k, weights in enumerate(alone):
        for position, (name, parameter) in enumerate(weights.items()):
            torch.testing.assert_close(stacked_weights[name][k], parameter.detach(), **update_tolerance(steps, 0.1))
            kept = optimizers[k].state[parameter]
            torch.testing.assert_close(state[position][k], kept["exp_avg"], rtol=steps * ROUNDINGS * UNIT_ROUNDING,
                                       atol=0)
            torch.testing.assert_close(state[len(weights) + position][k], kept["exp_avg_sq"],
                                       rtol=steps * ROUNDINGS * UNIT_ROUNDING, atol=0)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_one_at_a_time_optimiser_is_the_formula(optimizer):
    """make_optimizer's fused Adam/AdamW against the update written out by hand, element by element."""
    generator = torch.Generator().manual_seed(1)
    protocol = Protocol.from_config(settings(**{**ADAM, "optimizer": optimizer}, weight_decay=0.05))
    weight = torch.randn(6, generator=generator, dtype=torch.float64).requires_grad_()
    expected, m, v = weight.detach().clone(), torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    fused = make_optimizer(protocol, [weight])
    steps, (beta1, beta2), eps, decay = 20, (0.9, 0.999), 1e-8, 0.05
    for t in range(1, steps + 1):
        lr = 0.1 / t
        gradient = torch.randn(6, generator=generator, dtype=torch.float64)
        weight.grad = gradient.clone()
        fused.param_groups[0]["lr"] = lr
        fused.step()
        if optimizer == "adamw":
            expected = expected * (1 - lr * decay)
        else:
            gradient = gradient + decay * expected
        m = beta1 * m + (1 - beta1) * gradient
        v = beta2 * v + (1 - beta2) * gradient * gradient
        expected = expected - lr / (1 - beta1 ** t) * m / (torch.sqrt(v) / (1 - beta2 ** t) ** 0.5 + eps)
    torch.testing.assert_close(weight.detach(), expected, **update_tolerance(steps, 0.1))


def test_the_adam_update_reads_nothing_back_to_the_host():
    """No graph break when traced: what a captured CUDA graph needs (the step count and lr on the device)."""
    protocol = Protocol.from_config(settings(**{**ADAM, "optimizer": "adamw"}))
    parameters = [torch.randn(3, 2), torch.randn(3)]
    state = state_tensors(make_optimizer(protocol, parameters), protocol)
    lr = torch.tensor(0.01)

    def step(gradients):
        adam_update_(parameters, gradients, state, lr, protocol.betas, protocol.eps, 0.1, decoupled=True)

    explanation = torch._dynamo.explain(step)([torch.ones(3, 2), torch.ones(3)])
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_stacked_state_goes_to_per_network_files_and_back():
    protocol = Protocol.from_config(settings(**ADAM))
    named = {"w": torch.randn(3, 4, 2), "b": torch.randn(3, 4)}
    optimizer = make_optimizer(protocol, list(named.values()))
    state = state_tensors(optimizer, protocol)
    for tensor in state:
        tensor.add_(torch.rand(tensor.shape))
    state[-1].fill_(7)
    on_host = stacked_state(optimizer, named)
    files = [network_state(on_host, position) for position in range(3)]
    assert set(files[1]["w"]) == {"exp_avg", "exp_avg_sq", "step"} and files[1]["w"]["exp_avg"].shape == (4, 2)
    restored_named = {name: tensor.clone() for name, tensor in named.items()}
    restored = make_optimizer(protocol, list(restored_named.values()))
    restore_stacked_state(restored, restored_named, files)
    again = state_tensors(restored, protocol)
    assert all(torch.equal(a, b) for a, b in zip(again, state)) and again[-1].item() == 7
    assert all(restored.state[p]["step"] is again[-1] for p in restored_named.values())  # one shared count
    files[2]["w"]["step"] = torch.tensor(6.0)
    with pytest.raises(ValueError, match="disagree on step"):
        restore_stacked_state(make_optimizer(protocol, list(named.values())), named, files)


@pytest.mark.parametrize(("form", "key"), [("caffe", "velocity"), ("pytorch", "momentum_buffer")])
def test_resume_files_of_sgd_runs_saved_before_adam_are_read(form, key):
    protocol = Protocol.from_config(settings(momentum_form=form))
    momentum = torch.ones(2)
    assert saved_network_state({"velocity": {"fc.weight": momentum}}, protocol) == {"fc.weight": {key: momentum}}
    assert saved_network_state({"optimizer_state": {"fc.weight": {key: momentum}}}, protocol) == {
        "fc.weight": {key: momentum}}


# ---- The engines ----------------------------------------------------------------------------------

def adam_runs(optimizer: str):
    return specs(optimizer=optimizer, betas=[0.9, 0.999], eps=1e-8, lr=0.01)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_k_at_once_matches_one_at_a_time_with_adam(tmp_path, float64, optimizer):
    """60 iterations of 4 digits_cnn runs (float64). The engines' gradients differ by summation order,
    about 1e-16 of the per-example terms (at most about 1); Adam divides a gradient by sqrt(v_hat) +
    eps >= eps = 1e-8, so a step moves by at most lr * 1e-16 / 1e-8 = 1e-10 more, 6e-9 over 60
    steps: 1e-7 bounds that, while a wrong update moves weights by about lr = 0.01 per step."""
    runs = adam_runs(optimizer)
    indices = index_sets(len(runs), tiny_data()[1])
    alone = one_at_a_time(tmp_path / "alone", runs, indices)
    together = at_once(tmp_path / "together", runs, indices)
    for bundled, single in zip(together, alone):
        reference, weights = last_weights(single), last_weights(bundled)
        for name in reference:
            assert reference[name].dtype == torch.float64
            torch.testing.assert_close(weights[name], reference[name], rtol=0, atol=1e-7)
    first, second = last_weights(together[0]), last_weights(together[1])
    assert (first["fc2.weight"] - second["fc2.weight"]).abs().max() > 1e-3


def test_a_stacked_sgd_run_resumes_from_a_resume_file_of_before_adam(tmp_path, monkeypatch):
    """Saved with its momenta under ``velocity``, as the stacked engine wrote them before: the run
    resumes from it and ends bit-identical to an uninterrupted one."""
    runs = specs(methods=("baseline",), iterations=40, checkpoints=[40], resume_every=10)
    indices = index_sets(len(runs), tiny_data()[1])
    reference = at_once(tmp_path / "reference", runs, indices)
    interrupted_at_once(tmp_path / "resumed", monkeypatch, runs, indices, failing_call=5)  # both at 20
    for position in range(2):
        path = tmp_path / "resumed" / f"stacked{position}" / "resume.pt"
        state = torch.load(path, weights_only=True)
        assert state["iteration"] == 20
        state["velocity"] = {name: entries["velocity"] for name, entries in state.pop("optimizer_state").items()}
        torch.save(state, path)
    resumed = at_once(tmp_path / "resumed", runs, indices)
    for got, expected in zip(resumed, reference):
        reference_weights, weights = last_weights(expected), last_weights(got)
        assert all(torch.equal(weights[name], reference_weights[name]) for name in reference_weights)
    assert stacked.ENGINE == resumed[0]["engine"]["name"]
    np.testing.assert_array_equal([m["fingerprint"] for m in resumed], [m["fingerprint"] for m in reference])
