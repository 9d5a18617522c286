"""Train K runs at once as one stacked network: the fast engine for small models.

Runs that share a dataset, a model and a protocol (the repeats and methods of a profile) are trained
together. Their parameters are stacked along a new first dimension (``torch.func.stack_module_state``)
and one step evaluates all K networks on their own batches with ``vmap(functional_call(...))``. The
K losses are summed: each network's parameters get exactly its own gradient, and the optimisers
used here (SGD in Caffe's or PyTorch's form) act elementwise, so every network follows the same
trajectory it would alone, up to floating-point summation order. Dropout draws different masks per
network (``randomness="different"``).

Each run keeps its own files, in the format of ``training.train``: checkpoints, ``resume.pt``
(this engine's own layout, marked ``engine: stacked``), and ``run.json``. A run whose manifest
already matches its settings is not trained again. Runs whose resume states stand at different
iterations (a bundle of other runs was killed before) are trained in groups, one group per iteration.

Small networks on a GPU should be bound by kernel launches, not arithmetic; one stacked step
launches the kernels of one network for all K (scripts/benchmark.py measures it where a GPU is).
Dropout masks are drawn for the whole stack, so a run's masks depend on the runs beside it.
A group's resume states are all written before any is renamed into place, so a kill leaves them at
one iteration (short of the instant of the renames). Models with batch normalisation (ResNet-10) keep running statistics
that ``vmap`` cannot update in place: they go through ``training.train`` one run at a time.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import models
from .atomic import atomic_path
from .training import (EpochShuffler, RunSpec, autocast, checkpoint_path, effective_extra, finished_manifest,
                       load_checkpoint, make_optimizer, resolve_device, restore_rng_states, rng_states,
                       run_fingerprint, save_points, start_run, write_run_manifest)

log = logging.getLogger(__name__)

ENGINE = "stacked"


def supports(model: nn.Module) -> bool:
    """Whether a model can be trained stacked: no module keeps state that the step updates in place."""
    return not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


@dataclass
class StackedRun:
    """One run of a bundle: its spec, training indices, files, and its own state while it trains."""

    spec: RunSpec
    indices: np.ndarray
    run_dir: Path
    manifest_path: Path
    fingerprint_extra: dict
    phase_one: dict | None = None


class _Member:
    def __init__(self, run: StackedRun, model: nn.Module, fingerprint: str, extra: dict):
        self.run, self.model, self.fingerprint, self.extra = run, model, fingerprint, extra
        self.shuffler = EpochShuffler(run.indices, run.spec.data_rng())
        self.iteration, self.seconds, self.velocity, self.torch_rng = 0, 0.0, None, None


def _momentum_key(protocol) -> str:
    return "velocity" if protocol.momentum_form == "caffe" else "momentum_buffer"


def _prepare(run: StackedRun, n_classes: int, input_shape: tuple) -> _Member:
    torch.manual_seed(run.spec.init_seed())  # the same initial weights as training.train gives
    model = models.build(run.spec.model, n_classes, input_shape, run.spec.model_options)
    if run.phase_one is not None:
        load_checkpoint(run.phase_one["checkpoints"][-1], model, run.phase_one["fingerprint"])
    extra = effective_extra(run.fingerprint_extra, run.phase_one)
    member = _Member(run, model, run_fingerprint(run.spec, extra), extra)
    state = start_run(run.run_dir, member.fingerprint, ENGINE)
    if state is None:
        return member
    model.load_state_dict(state["model"])
    member.shuffler.load_state_dict(state["shuffler"])
    member.iteration, member.seconds = state["iteration"], state["seconds"]
    member.velocity, member.torch_rng = state["velocity"], state["torch_rng"]
    log.info("resuming %s at iteration %d of %d", run.run_dir, member.iteration, run.spec.protocol.iterations)
    return member


def _finished(run: StackedRun) -> dict | None:
    extra = effective_extra(run.fingerprint_extra, run.phase_one)
    return finished_manifest(run.manifest_path, run_fingerprint(run.spec, extra))


def train_stacked(runs: list[StackedRun], batches, n_classes: int, device: str = "auto",
                  log_every: int = 100) -> list[dict]:
    """Train ``runs`` (same model and protocol) at once; return their manifests in order.

    ``batches`` is a ``training.TensorBatches`` over the dataset's training pool. Runs already
    finished with the same settings are returned as they are.
    """
    if not runs:
        return []
    protocols = {repr(run.spec.protocol) for run in runs}
    model_names = {(run.spec.model, repr(run.spec.model_options)) for run in runs}
    if len(protocols) > 1 or len(model_names) > 1:
        raise ValueError("a stacked bundle needs one model and one protocol; got "
                         f"{len(model_names)} models and {len(protocols)} protocols")
    torch_device = resolve_device(device)
    manifests: dict[int, dict] = {}
    pending = []
    for position, run in enumerate(runs):
        manifest = _finished(run)
        if manifest is not None:
            manifests[position] = manifest
        else:
            pending.append((position, _prepare(run, n_classes, batches.input_shape)))
    by_iteration: dict[int, list] = {}
    for position, member in pending:
        by_iteration.setdefault(member.iteration, []).append((position, member))
    for start in sorted(by_iteration):
        group = by_iteration[start]
        _train_group([member for _, member in group], batches, torch_device, log_every)
        for position, member in group:
            manifests[position] = _write_manifest(member, torch_device, len(group))
    return [manifests[position] for position in range(len(runs))]


def _train_group(members: list[_Member], batches, device: torch.device, log_every: int) -> None:
    protocol = members[0].run.spec.protocol
    two_phase = members[0].run.phase_one is not None
    if any((member.run.phase_one is not None) != two_phase for member in members):
        raise ValueError("a stacked bundle cannot mix one-phase and two-phase runs")
    template = members[0].model
    if not supports(template):
        raise ValueError(f"model {members[0].run.spec.model} has batch normalisation: train it with training.train")
    for member in members:
        member.model.to(device)
    parameters, buffers = stack_module_state([member.model for member in members])
    trainable_names = list(parameters)
    if two_phase:
        trainable_names = [name for name in parameters if name.split(".")[0] in template.output_layers]
        for name in parameters:
            if name not in trainable_names:
                parameters[name] = parameters[name].detach()
    base = copy.deepcopy(template).to("meta")

    def one_loss(params, buffs, inputs, targets):
        logits = functional_call(base, (params, buffs), (inputs,))
        return nn.functional.cross_entropy(logits, targets)

    losses_of = vmap(one_loss, randomness="different")
    trainable = [parameters[name] for name in trainable_names]
    optimizer = make_optimizer(protocol, trainable)
    key = _momentum_key(protocol)
    # No momentum kept yet (a fresh start, or momentum 0 in PyTorch's form, which keeps none): nothing to restore.
    if all(member.velocity for member in members):
        for name, parameter in zip(trainable_names, trainable):
            if all(name in member.velocity for member in members):
                optimizer.state[parameter][key] = torch.stack([m.velocity[name] for m in members]).to(device)
    if members[0].torch_rng is not None:
        restore_rng_states(members[0].torch_rng, device)

    def save_states(iteration: int, seconds: float, checkpoint: bool) -> None:
        # Every file is written under a temporary name first and all are renamed together at the
        # end, so that a kill almost never leaves the group's runs at different iterations.
        with contextlib.ExitStack() as renames:
            for position, member in enumerate(members):
                state = {name: tensor[position].detach().clone().cpu()
                         for name, tensor in {**parameters, **buffers}.items()}
                if checkpoint:
                    temporary = renames.enter_context(atomic_path(checkpoint_path(member.run.run_dir, iteration)))
                    torch.save({"fingerprint": member.fingerprint, "iteration": iteration, "model": state}, temporary)
                velocity = {name: optimizer.state[parameter][key][position].detach().clone().cpu()
                            for name, parameter in zip(trainable_names, trainable) if key in optimizer.state[parameter]}
                temporary = renames.enter_context(atomic_path(member.run.run_dir / "resume.pt"))
                torch.save({"engine": ENGINE, "fingerprint": member.fingerprint, "iteration": iteration,
                            "seconds": seconds + member.seconds, "model": state, "velocity": velocity,
                            "shuffler": member.shuffler.state_dict(), "torch_rng": rng_states(device)}, temporary)

    checkpoints = set(protocol.checkpoints)
    iteration = members[0].iteration
    # Between two save points, batch indices are drawn ahead and copied to the device in one piece.
    stops = save_points(protocol, log_every)
    if two_phase:
        log.info("second phase: training %s of %d networks", ", ".join(trainable_names), len(members))
    elapsed, started = 0.0, time.perf_counter()
    while iteration < protocol.iterations:
        stop = next(point for point in stops if point > iteration)
        ahead = np.stack([np.stack([member.shuffler.next_batch(protocol.batch_size)
                                    for _ in range(stop - iteration)]) for member in members], axis=1)
        rows = torch.from_numpy(ahead).to(device)  # (steps, K, batch)
        for step in range(stop - iteration):
            inputs, targets = batches.gather(rows[step])
            for group in optimizer.param_groups:
                group["lr"] = protocol.learning_rate(iteration + step)
            with autocast(device, protocol.precision):
                losses = losses_of(parameters, buffers, inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
        iteration = stop
        if iteration % log_every == 0 or iteration == protocol.iterations:
            values = losses.detach().cpu().numpy()
            log.info("iteration %d: %d networks, loss mean %.4f (min %.4f, max %.4f), lr %.6f", iteration,
                     len(members), values.mean(), values.min(), values.max(), protocol.learning_rate(iteration - 1))
        if iteration in checkpoints or iteration % protocol.resume_every == 0:
            now = time.perf_counter()
            elapsed, started = elapsed + now - started, now
            save_states(iteration, elapsed, iteration in checkpoints)
    for position, member in enumerate(members):
        member.seconds += elapsed
        member.model = member.model.to("cpu")


def _write_manifest(member: _Member, device: torch.device, bundle_size: int) -> dict:
    run = member.run
    # train_seconds: the time of the whole stacked group, whose networks trained together.
    return write_run_manifest(run.spec, member.fingerprint, member.extra, run.run_dir, run.manifest_path,
                              training_examples=len(run.indices),
                              trained_layers=list(member.model.output_layers) if run.phase_one is not None else "all",
                              epochs_started=member.shuffler.epoch + 1, train_seconds=member.seconds,
                              engine={"name": ENGINE, "networks_at_once": bundle_size}, device=device)
