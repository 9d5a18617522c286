"""The training loop both engines share, and a run as a training job holds it (``Trainee``).

``train_loop`` owns everything about the course of training: the save points (checkpoints, resume
states, log lines), the learning-rate schedule, autocast, the optimiser step, timing and logging. An
engine supplies only what differs between training one network and K stacked networks: the batches
of the next steps (``draw``, ``batch``), the losses of a batch (``losses``: one per network) and how
its state is written (``save``). A fixed number of iterations, whatever the size of the training set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import models, rundir
from .devices import autocast
from .optim import set_learning_rate
from .plan import Run
from .protocol import Protocol

log = logging.getLogger(__name__)


@dataclass
class Trainee:
    """A planned run as its job trains it: the indices it trains on, where its files go, its inputs.

    ``inputs`` (the index file, its sha256, the dataset's digest) and the first phase's manifest of a
    two-phase run make the run's fingerprint together with its settings.
    """

    run: Run
    indices: np.ndarray
    run_dir: Path
    inputs: dict = field(default_factory=dict)
    phase_one: dict | None = None

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / "run.json"

    @cached_property
    def fingerprint_inputs(self) -> dict:
        if self.phase_one is None:
            return dict(self.inputs)
        return {**self.inputs, "phase_one_fingerprint": self.phase_one["fingerprint"]}

    @cached_property
    def fingerprint(self) -> str:
        return rundir.fingerprint(self.run.fingerprint_settings(), self.fingerprint_inputs)

    def finished(self) -> dict | None:
        """The manifest when the run is already trained with these settings and inputs."""
        return rundir.finished_manifest(self.manifest_path, self.fingerprint)

    def build_model(self, n_classes: int, input_shape: tuple) -> torch.nn.Module:
        """The run's initial network (shared by the methods of a set and seed), on the CPU; a second
        phase starts from its first phase's last checkpoint."""
        torch.manual_seed(self.run.init_seed())
        model = models.build(self.run.model, n_classes, input_shape, self.run.model_options)
        if self.phase_one is not None:
            rundir.load_checkpoint(self.phase_one["checkpoints"][-1], model, self.phase_one["fingerprint"])
        return model

    def resume(self, engine: str, model: torch.nn.Module, shuffler) -> dict | None:
        """Start the run: clear what a killed job left half-written and load the resume state, when
        one of these settings and engine exists, into ``model`` and ``shuffler``. Returns the state,
        whose engine-specific parts the engine restores (None: the run starts afresh)."""
        state = rundir.start_run(self.run_dir, self.fingerprint, engine)
        if state is not None:
            model.load_state_dict(state["model"])
            shuffler.load_state_dict(state["shuffler"])
            log.info("resuming %s at iteration %d of %d", self.run_dir, state["iteration"], self.run.protocol.iterations)
        return state

    def write_manifest(self, *, trained_layers, epochs_started: int, train_seconds: float, engine: dict,
                       device: torch.device) -> dict:
        return rundir.write_manifest(self.run_dir, {
            "fingerprint": self.fingerprint, "spec": self.run.fingerprint_settings(), "inputs": self.fingerprint_inputs,
            "training_examples": int(len(self.indices)), "trained_layers": trained_layers,
            "epochs_started": epochs_started, "train_seconds": round(train_seconds, 3), "engine": engine,
            "device": str(device)}, self.run.protocol.checkpoints)


def save_points(protocol: Protocol, log_every: int) -> list[int]:
    """Iterations after which training writes (checkpoints, resume state) or logs. Between two of
    them nothing is read back from the device, so a GPU never waits on the host."""
    every = set(range(protocol.resume_every, protocol.iterations + 1, protocol.resume_every))
    every |= set(range(log_every, protocol.iterations + 1, log_every))
    return sorted(every | set(protocol.checkpoints) | {protocol.iterations})


def train_loop(engine, protocol: Protocol, start: int, device: torch.device, log_every: int, what: str) -> float:
    """Train from iteration ``start`` to the protocol's end; returns the seconds it took.

    ``engine`` supplies ``optimizer``; ``draw(steps)`` (the batch indices of the next steps, copied to
    the device in one piece); ``batch(step, iteration)`` -> (inputs, targets); ``losses(inputs,
    targets)`` -> one loss per network; ``save(iteration, checkpoint, seconds)``; ``describe(losses)``
    for the log. The losses of K networks are summed: each network's parameters get their own gradient.
    """
    stops = save_points(protocol, log_every)
    iteration, elapsed, started = start, 0.0, time.perf_counter()
    while iteration < protocol.iterations:
        stop = next(point for point in stops if point > iteration)
        engine.draw(stop - iteration)
        for step in range(stop - iteration):
            inputs, targets = engine.batch(step, iteration + step)
            set_learning_rate(engine.optimizer, protocol.learning_rate(iteration + step))
            with autocast(device, protocol.precision):
                losses = engine.losses(inputs, targets)
            engine.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            engine.optimizer.step()
        iteration = stop
        if iteration % log_every == 0 or iteration == protocol.iterations:
            log.info("%s: iteration %d, %s, lr %.6f", what, iteration, engine.describe(losses.detach()),
                     protocol.learning_rate(iteration - 1))
        checkpoint = iteration in protocol.checkpoints
        if checkpoint or iteration % protocol.resume_every == 0:
            now = time.perf_counter()
            elapsed, started = elapsed + now - started, now
            engine.save(iteration, checkpoint, elapsed)
    return elapsed
