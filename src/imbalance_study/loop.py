"""The training loop both engines share, and a run as a training job holds it (``Trainee``).

``train_loop`` owns everything about the course of training: the save points (checkpoints, resume
states, log lines), the learning-rate schedule, timing, logging, and watching for divergence
(``Divergence``). An engine supplies only what differs between training one network and K stacked
networks: the batches of the next steps (``draw``), one training step (``step``: its batch, autocast,
the losses, the gradients and the optimiser's update; the one-at-a-time engine by ``backward()``, the
stacked engine as one function that CUDA graphs can capture, ``stacked_step``), whether each network's
weights are finite (``finite``) and how its state is written (``save``). A fixed number of
iterations, whatever the size of the training set.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import models, rundir
from .plan import Run
from .protocol import Protocol

log = logging.getLogger(__name__)


@dataclass
class Trainee:
    """A planned run as its job trains it: the indices it trains on, where its files go, its inputs.

    ``inputs`` (the index file, its sha256, the dataset's digest) and the first phase's manifest of a
    two-phase run make the run's fingerprint together with its settings. ``class_counts``: the
    examples per class of the run's imbalanced set before any sampling, which a loss other than
    plain cross-entropy is computed from (``losses``).
    """

    run: Run
    indices: np.ndarray
    run_dir: Path
    inputs: dict = field(default_factory=dict)
    phase_one: dict | None = None
    class_counts: np.ndarray | None = None

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
        phase starts from its first phase's last checkpoint, with the layers it trains
        re-initialised when ``method.reinitialise`` (cRT): to the run's initial weights of those
        layers, drawn from its init seed by the model's own initialisation."""
        torch.manual_seed(self.run.init_seed())
        model = models.build(self.run.model, n_classes, input_shape, self.run.model_options)
        if self.phase_one is not None:
            initial = {}
            if self.run.method.reinitialise:
                initial = {name: copy.deepcopy(getattr(model, name).state_dict())
                           for name in self.fine_tuned_layers(model)}
            rundir.load_checkpoint(self.phase_one["checkpoints"][-1], model, self.phase_one["fingerprint"])
            for name, state in initial.items():
                getattr(model, name).load_state_dict(state)
        return model

    def fine_tuned_layers(self, model: torch.nn.Module) -> tuple[str, ...]:
        """The layers a second phase trains: those the config names (``two_phase.layers``), else the
        model's output layers."""
        layers = self.run.method.fine_tuned or tuple(model.output_layers)
        children = dict(model.named_children())
        unknown = [name for name in layers if name not in children]
        if unknown:
            raise ValueError(f"methods.{self.run.method.name}.two_phase.layers: model {self.run.model} has no "
                             f"layer {', '.join(unknown)}; its layers are {', '.join(children)}")
        return layers

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

    def trained(self, model: torch.nn.Module, epoch: int, train_seconds: float, engine: dict, device: torch.device,
                diverged: dict | None = None) -> dict:
        """The manifest of the run as an engine trained it: the layers it trained, the epochs it began
        (``epoch``: the data order's epoch at its last stop)."""
        return self.write_manifest(
            trained_layers=list(self.fine_tuned_layers(model)) if self.phase_one is not None else "all",
            epochs_started=epoch + 1, train_seconds=train_seconds, engine=engine, device=device,
            diverged=diverged)

    def write_manifest(self, *, trained_layers, epochs_started: int, train_seconds: float, engine: dict,
                       device: torch.device, diverged: dict | None = None, checkpoints=None) -> dict:
        """The run's manifest; a run that diverged lists only the checkpoints saved before, and says
        when. ``checkpoints``: the iterations saved, when not the protocol's."""
        checkpoints = self.run.protocol.checkpoints if checkpoints is None else checkpoints
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

    A network diverges when its loss or its weights are not finite at a stop (a log or save point),
    or when its loss stays above ``CEILING`` times the loss of a uniform prediction (log K for K
    classes, about where training starts) at ``PATIENCE`` stops in a row; it diverged at the first of
    those. Such a run is not a result (a score at chance would read as "this method fails"): it is
    stopped, marked, and left out of figures and selection. The count of stops above the ceiling is
    part of the resume state (``state``), so a resumed run diverges where an uninterrupted one would.
    """

    CEILING = 10.0
    PATIENCE = 2

    def __init__(self, n_classes: int, states: list[dict]):
        self.ceiling = self.CEILING * math.log(n_classes)
        self.states = [dict(state) for state in states]  # per network: {"above": stops in a row, "since": first}
        self.at: dict[int, dict] = {}  # network -> {"iteration", "loss", "reason"}

    def check(self, iteration: int, losses: np.ndarray, finite_weights: np.ndarray) -> list[int]:
        """Record the networks that diverge at this stop; returns them."""
        newly = []
        for network, (loss, finite, state) in enumerate(zip(losses, finite_weights, self.states)):
            if network in self.at:
                continue
            above = bool(loss > self.ceiling)
            state.update(above=state["above"] + 1 if above else 0, since=(state["since"] or iteration) if above else None)
            if not math.isfinite(loss) or not finite:
                self.at[network] = {"iteration": iteration, "loss": float(loss),
                                    "reason": "non-finite loss" if not math.isfinite(loss) else "non-finite weights"}
            elif state["above"] >= self.PATIENCE:
                self.at[network] = {"iteration": state["since"], "loss": float(loss),
                                    "reason": f"loss above {self.ceiling:.3g} (10 x log K) at {self.PATIENCE} stops "
                                              f"in a row, from iteration {state['since']}"}
            else:
                continue
            newly.append(network)
        return newly

    @property
    def all(self) -> bool:
        return len(self.at) == len(self.states)


FRESH = {"above": 0, "since": None}  # the divergence watch of a run that starts afresh


def train_loop(engine, protocol: Protocol, start: int, log_every: int, what: str, n_classes: int) -> float:
    """Train from iteration ``start`` to the protocol's end, or until every network diverged; returns
    the seconds it took.

    ``engine`` supplies ``divergence`` (each network's watch state, ``FRESH`` or as resumed);
    ``draw(steps)`` (keeps the data order's state at this stop, for ``save``, then draws the batch
    indices of the next steps and starts their copy to the device in one piece: it is called before
    the loss is read, so the host draws while the device still computes); ``step(step, iteration,
    lr)`` -> one loss per network: trains on the ``step``-th batch drawn at this stop (the run's
    ``iteration``) at learning rate ``lr``, with nothing read back from the device;
    ``finite()`` -> whether each network's weights are finite; ``diverged(network,
    record, seconds)``, told at once when a network diverges (it is then finished: its manifest is
    written); ``save(iteration, checkpoint, resume, seconds, watch)`` (the checkpoint and/or the resume state;
    networks in ``watch.at`` are not
    saved); ``describe(losses, diverged)`` for the log. The losses of K networks are summed: each network's
    parameters get their own gradient, so one network's divergence leaves the others as they were.
    """
    stops = save_points(protocol, log_every)

    def after(iteration: int) -> int:
        return next((point for point in stops if point > iteration), iteration)

    watch = Divergence(n_classes, engine.divergence)
    iteration, elapsed, started = start, 0.0, time.perf_counter()
    stop = after(iteration)
    engine.draw(stop - iteration)
    while iteration < protocol.iterations and not watch.all:
        for step in range(stop - iteration):
            losses = engine.step(step, iteration + step, protocol.learning_rate(iteration + step))
        iteration, stop = stop, after(stop)
        engine.draw(stop - iteration)  # queued behind the steps: the device never waits for the host
        values = losses.detach().float().reshape(-1).cpu().numpy()  # one read of the device per stop
        now = time.perf_counter()
        for network in watch.check(iteration, values, engine.finite()):
            log.warning("%s: network %d diverged at iteration %d (%s); it is stopped and left out of figures "
                        "and selection", what, network, watch.at[network]["iteration"], watch.at[network]["reason"])
            engine.diverged(network, watch.at[network], elapsed + now - started)
        if iteration % log_every == 0 or iteration == protocol.iterations:
            log.info("%s: iteration %d, %s, lr %.6f", what, iteration, engine.describe(values, watch.at),
                     protocol.learning_rate(iteration - 1))
        checkpoint = iteration in protocol.checkpoints
        # The resume state only every resume_every iterations, and not at the end, where the manifest
        # follows at once: a checkpoint alone is one file per run, not two (a kill after it redoes at
        # most resume_every iterations, bit-identical, and rewrites the same checkpoint).
        resume = iteration % protocol.resume_every == 0 and iteration < protocol.iterations
        if not watch.all and (checkpoint or resume):
            elapsed, started = elapsed + now - started, now
            engine.save(iteration, checkpoint, resume, elapsed, watch)
    return elapsed + time.perf_counter() - started
