"""Tau-normalisation (Kang et al., ICLR 2020): a second "phase" that trains nothing.

Each checkpoint of the first phase, with the output layer's weights (``model.output_layers[-1]``:
the rows of a Linear weight, or of a 1x1 convolution's, one per class) divided by ``||w_c||^tau``
and its bias unchanged, is saved as the run's checkpoint at the same iteration. ``tau = 0`` leaves
the weights as they are; ``tau = 1`` gives every class's weight vector unit norm. The run's
directory is in the format both engines write (``rundir``), its fingerprint made like any second
phase's (its settings and its first phase's fingerprint), and a finished run is not redone.
"""

from __future__ import annotations

import logging
import time

import torch

from . import models, rundir
from .loop import Trainee

log = logging.getLogger(__name__)

ENGINE = "tau_normalisation"


def tau_normalised(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """``weight`` (classes first: (C, D) or (C, D, 1, 1)) with each class's row divided by its
    Euclidean norm to the power ``tau``."""
    norms = weight.flatten(1).norm(dim=1)
    return weight / norms.pow(tau).reshape(-1, *([1] * (weight.ndim - 1)))


def output_weight_name(model: torch.nn.Module, n_classes: int) -> str:
    """The state-dict key of the weights that map features to class scores: the last output layer's
    weight, one row per class (a Linear layer's, a cosine classifier's or a 1x1 convolution's)."""
    layer = model.output_layers[-1]
    weight = getattr(getattr(model, layer), "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2 or weight.shape[0] != n_classes \
            or any(size != 1 for size in weight.shape[2:]):
        raise ValueError(f"tau_normalise: the output layer {layer} of {type(model).__name__} has no weight of one "
                         f"row per class ({n_classes}) to rescale, as a Linear or 1x1 convolution layer has")
    return f"{layer}.weight"


def normalise_run(trainee: Trainee, n_classes: int, input_shape: tuple) -> dict:
    """Write the tau-normalised checkpoints of ``trainee`` (a run whose ``method.tau_normalise`` is
    set and whose ``phase_one`` is its first phase's manifest) and its manifest, on the CPU (a few
    matrices per checkpoint); returns the manifest. A run already finished with these settings and
    first phase is returned as it is."""
    finished = trainee.finished()
    if finished is not None:
        log.info("%s is already tau-normalised with these settings", trainee.run_dir)
        return finished
    tau = trainee.run.method.tau_normalise
    if tau is None or trainee.phase_one is None:
        raise ValueError(f"{trainee.run_dir}: tau-normalisation needs methods.{trainee.run.method.name}.two_phase "
                         f"with tau_normalise and a first phase")
    started = time.perf_counter()
    rundir.start_run(trainee.run_dir, trainee.fingerprint, ENGINE)  # clears half-written files of a killed job
    model = models.build(trainee.run.model, n_classes, input_shape, trainee.run.model_options)
    name = output_weight_name(model, n_classes)
    iterations = []
    for entry in trainee.phase_one["checkpoints"]:
        rundir.load_checkpoint(entry, model, trainee.phase_one["fingerprint"])
        state = model.state_dict()
        state[name] = tau_normalised(state[name], tau)
        rundir.save({"fingerprint": trainee.fingerprint, "iteration": entry["iteration"], "model": state},
                    rundir.checkpoint_path(trainee.run_dir, entry["iteration"]))
        iterations.append(entry["iteration"])
    log.info("%s: %d checkpoints of %s tau-normalised (tau %g)", trainee.run_dir, len(iterations),
             trainee.run.method.phase_one, tau)
    return trainee.write_manifest(trained_layers=[], epochs_started=0, train_seconds=time.perf_counter() - started,
                                  engine={"name": ENGINE, "networks_at_once": 0}, device=torch.device("cpu"),
                                  checkpoints=iterations)
