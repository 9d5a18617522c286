"""Training one network at a time: the engine for CPUs, batch-normalised models and image folders.

The pool sits on the device (``batches.TensorBatches``) and a batch is one gather; image folders are
decoded per batch on the host (``batches.ImageFolderBatches``). The course of training is
``loop.train_loop``'s; this engine supplies the network's step and writes its state in the run
directory's format (``rundir``), resumable bit for bit on the CPU. The run's loss is ``losses``'
(plain cross-entropy is ``nn.functional.cross_entropy`` itself), its data order ``samplers``'.
With the protocol's ``augment`` on, each gathered batch is cropped and flipped by the run's draws for
its iteration (``augment``: from the run's seed and the iteration, so a resumed run draws the same).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from . import augment, rundir
from .batches import upload
from .devices import autocast, resolve_device, restore_rng_states, rng_states
from .loop import FRESH, Trainee, train_loop
from .losses import RunLosses
from .optim import freeze_all_but, make_optimizer, set_learning_rate
from .samplers import data_order

log = logging.getLogger(__name__)

ENGINE = "one_at_a_time"


class OneAtATime:
    """One network on its own batches, in channels-last layout for images."""

    def __init__(self, trainee: Trainee, batches, n_classes: int, device: torch.device):
        self.trainee, self.batches, self.device = trainee, batches, device
        model = trainee.build_model(n_classes, batches.input_shape).to(device)
        if batches.channels_last:
            model = model.to(memory_format=torch.channels_last)
        parameters = list(model.parameters())
        trained = trainee.fine_tuned_layers(model) if trainee.phase_one is not None else None
        if trained is not None:
            parameters = freeze_all_but(model, trained)
        self.model = model
        self.augment = augment.training_settings(trainee.run.protocol, batches)  # None: off
        self.augment_seed = augment.run_seed(trainee.run) if self.augment else None
        self.optimizer = make_optimizer(trainee.run.protocol, parameters)
        self.shuffler = data_order(trainee, batches.labels)
        self.loss = RunLosses([trainee.run.method.loss], [trainee.class_counts], n_classes,
                              trainee.run.protocol.iterations, device, parameters[0].dtype)
        self.iteration, self.seconds, self.ahead, self.divergence, self.manifest = 0, 0.0, None, [FRESH], None
        state = trainee.resume(ENGINE, model, self.shuffler)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            restore_rng_states(state["torch_rng"], device)
            self.iteration, self.seconds, self.divergence = state["iteration"], state["seconds"], [state["divergence"]]
        self.loss.start_at(self.iteration)
        self.drawn_to = self.iteration  # the iteration the next draw starts at
        self.augment_ahead = None
        model.train()
        if trained is not None:
            # Frozen layers keep their first-phase normalisation statistics too.
            for name, child in model.named_children():
                for module in child.modules() if name not in trained else ():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()

    def draw(self, steps: int) -> None:
        self.at_stop = self.shuffler.state_dict()
        batch_size = self.trainee.run.protocol.batch_size
        if self.batches.in_memory:
            self.ahead = upload(self.shuffler.next_batches(steps, batch_size), self.device)
        if self.augment:
            draws = augment.draw_batches(self.augment_seed, self.drawn_to, steps, batch_size,
                                         padding=self.augment["crop_padding"], flip=self.augment["flip"])
            self.augment_ahead = (upload(draws.offsets, self.device), upload(draws.flips, self.device))
        self.drawn_to += steps

    def batch(self, step: int, iteration: int):
        if self.augment:
            offsets, flips = self.augment_ahead
            return self.batches.gather(self.ahead[step], offsets[step], flips[step], self.augment["crop_padding"])
        if self.batches.in_memory:
            return self.batches.gather(self.ahead[step])
        return self.batches(self.shuffler.next_batch(self.trainee.run.protocol.batch_size), iteration)

    def losses(self, inputs, targets) -> torch.Tensor:
        return self.loss.one(self.model(inputs), targets)

    def step(self, step: int, iteration: int, lr: float) -> torch.Tensor:
        """One training step (``loop.train_loop``): the forward pass under the protocol's autocast,
        ``backward()``, the optimiser's step."""
        inputs, targets = self.batch(step, iteration)
        set_learning_rate(self.optimizer, lr)
        self.loss.before_step(iteration)
        with autocast(self.device, self.trainee.run.protocol.precision):
            losses = self.losses(inputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        losses.backward()
        self.optimizer.step()
        return losses.detach()

    def describe(self, losses: np.ndarray, diverged: dict) -> str:
        return f"loss {losses[0]:.4f}, epoch {self.at_stop['epoch']}"

    def finite(self) -> np.ndarray:
        return np.array([all(bool(torch.isfinite(parameter).all()) for parameter in self.model.parameters())])

    def diverged(self, network: int, record: dict, seconds: float) -> None:
        self.manifest = self.write_manifest(seconds, record)

    def write_manifest(self, seconds: float, diverged: dict | None = None) -> dict:
        return self.trainee.trained(self.model, self.at_stop["epoch"], self.seconds + seconds,
                                    {"name": ENGINE, "networks_at_once": 1}, self.device, diverged)

    def save(self, iteration: int, checkpoint: bool, resume: bool, seconds: float, watch) -> None:
        trainee = self.trainee
        if checkpoint:
            rundir.save({"fingerprint": trainee.fingerprint, "iteration": iteration, "model": self.model.state_dict()},
                        rundir.checkpoint_path(trainee.run_dir, iteration))
        if resume:
            rundir.save({"engine": ENGINE, "fingerprint": trainee.fingerprint, "iteration": iteration,
                         "seconds": self.seconds + seconds, "model": self.model.state_dict(),
                         "optimizer": self.optimizer.state_dict(), "shuffler": self.at_stop,
                         "torch_rng": rng_states(self.device), "divergence": watch.states[0]},
                        trainee.run_dir / "resume.pt")


def train(trainee: Trainee, batches, n_classes: int, device: str = "auto", log_every: int = 100) -> dict:
    """Train one run, resuming from its ``resume.pt`` when that matches, and write its manifest last.

    ``batches`` turns batch indices into (inputs, targets) on the device (``batches.TensorBatches``
    or ``batches.ImageFolderBatches``). A run already trained with these settings is returned as it is.
    """
    finished = trainee.finished()
    if finished is not None:
        log.info("%s is already trained with these settings", trainee.run_dir)
        return finished
    torch_device = resolve_device(device)
    engine = OneAtATime(trainee, batches, n_classes, torch_device)
    seconds = train_loop(engine, trainee.run.protocol, engine.iteration, log_every, str(trainee.run_dir),
                         n_classes)
    return engine.manifest or engine.write_manifest(seconds)
