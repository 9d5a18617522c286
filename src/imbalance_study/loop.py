"""The training loop both engines share, and a run as a training job holds it (``Trainee``).

``train_loop`` owns everything about the course of training: the save points (checkpoints, resume
states, log lines), the learning-rate schedule, autocast, the optimiser step, timing, logging, and
watching for divergence (``Divergence``). An engine supplies only what differs between training one
network and K stacked networks: the batches of the next steps (``draw``, ``batch``), the losses of a
batch (``losses``: one per network), whether each network's weights are finite (``finite``) and how
its state is written (``save``). A fixed number of iterations, whatever the size of the training set.
"""

from __future__ import annotations

import logging
import math
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

    @property
    def warnings(self) -> list[str]:
        """What the run's result should be read with: a batch larger than its training set repeats
        examples within every batch (an undersampled set at a high rho)."""
        batch_size = self.run.protocol.batch_size
        if len(self.indices) < batch_size:
            return [f"the training set has {len(self.indices)} examples, fewer than a batch ({batch_size}): "
                    f"every batch repeats examples"]
        return []

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
                       device: torch.device, diverged: dict | None = None) -> dict:
        """The run's manifest; a run that diverged lists only the checkpoints saved before, and says when."""
        checkpoints = self.run.protocol.checkpoints
        if diverged is not None:
            checkpoints = [checkpoint for checkpoint in checkpoints if checkpoint < diverged["iteration"]]
        return rundir.write_manifest(self.run_dir, {
            "fingerprint": self.fingerprint, "spec": self.run.fingerprint_settings(), "inputs": self.fingerprint_inputs,
            "training_examples": int(len(self.indices)), "trained_layers": trained_layers,
            "epochs_started": epochs_started, "train_seconds": round(train_seconds, 3), "engine": engine,
            "device": str(device), "diverged": diverged, "warnings": self.warnings}, checkpoints)


def save_points(protocol: Protocol, log_every: int) -> list[int]:
    """Iterations after which training writes (checkpoints, resume state) or logs. Between two of
    them nothing is read back from the device, so a GPU never waits on the host."""
    every = set(range(protocol.resume_every, protocol.iterations + 1, protocol.resume_every))
    every |= set(range(log_every, protocol.iterations + 1, log_every))
    return sorted(every | set(protocol.checkpoints) | {protocol.iterations})


class Divergence:
    """Which networks of a step have diverged, and when.

    A network diverges when its loss or its weights are not finite at a stop, or when its loss stays
    above ``CEILING`` times the loss of a uniform prediction (log K for K classes, about where training
    starts) at ``PATIENCE`` stops in a row: such a run is not a result (a score at chance would read as
    "this method fails"), so it is stopped, marked, and left out of figures and selection.
    """

    CEILING = 10.0
    PATIENCE = 2

    def __init__(self, n_networks: int, n_classes: int):
        self.ceiling = self.CEILING * math.log(n_classes)
        self.above = np.zeros(n_networks, dtype=int)
        self.at: dict[int, dict] = {}  # network -> {"iteration", "loss", "reason"}

    def check(self, iteration: int, losses: np.ndarray, finite_weights: np.ndarray) -> list[int]:
        """Record the networks that diverge at this stop; returns them."""
        self.above = np.where(losses > self.ceiling, self.above + 1, 0)
        newly = []
        for network, (loss, finite) in enumerate(zip(losses, finite_weights)):
            if network in self.at:
                continue
            reason = ("non-finite loss" if not math.isfinite(loss) else "non-finite weights" if not finite
                      else f"loss above {self.ceiling:.3g} (10 x log K) at {self.PATIENCE} stops in a row"
                      if self.above[network] >= self.PATIENCE else None)
            if reason:
                self.at[network] = {"iteration": iteration, "loss": float(loss), "reason": reason}
                newly.append(network)
        return newly

    @property
    def all(self) -> bool:
        return len(self.at) == len(self.above)


def train_loop(engine, protocol: Protocol, start: int, device: torch.device, log_every: int, what: str,
               n_classes: int) -> tuple[float, dict[int, dict]]:
    """Train from iteration ``start`` to the protocol's end, or until every network diverged; returns
    the seconds it took and the networks that diverged (``Divergence.at``).

    ``engine`` supplies ``optimizer``; ``draw(steps)`` (the batch indices of the next steps, copied to
    the device in one piece); ``batch(step, iteration)`` -> (inputs, targets); ``losses(inputs,
    targets)`` -> one loss per network; ``finite()`` -> whether each network's weights are finite;
    ``save(iteration, checkpoint, seconds, skip)`` (``skip``: networks that diverged, whose state is
    not written); ``describe(losses)`` for the log. The losses of K networks are summed: each network's
    parameters get their own gradient, so one network's divergence leaves the others as they were.
    """
    stops = save_points(protocol, log_every)
    watch = None
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
        values = losses.detach().float().reshape(-1).cpu().numpy()  # one read of the device per stop
        watch = watch or Divergence(len(values), n_classes)
        for network in watch.check(iteration, values, engine.finite()):
            log.warning("%s: network %d diverged at iteration %d (%s); it is stopped and left out of figures "
                        "and selection", what, network, iteration, watch.at[network]["reason"])
        if iteration % log_every == 0 or iteration == protocol.iterations:
            log.info("%s: iteration %d, %s, lr %.6f", what, iteration, engine.describe(losses.detach()),
                     protocol.learning_rate(iteration - 1))
        if watch.all:
            break
        checkpoint = iteration in protocol.checkpoints
        if checkpoint or iteration % protocol.resume_every == 0:
            now = time.perf_counter()
            elapsed, started = elapsed + now - started, now
            engine.save(iteration, checkpoint, elapsed, skip=set(watch.at))
    return elapsed + time.perf_counter() - started, (watch.at if watch else {})
