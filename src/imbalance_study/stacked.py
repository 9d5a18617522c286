"""Training K runs at once as one stacked network: the engine for small models on a GPU.

Runs that share a dataset, a model and a protocol (the repeats and methods of a profile) are trained
together. Their parameters are stacked along a new first dimension (``torch.func.stack_module_state``)
and one step evaluates all K networks on their own batches with ``vmap(functional_call(...))``. The
K losses are summed: each network's parameters get exactly its own gradient, and the optimisers
used here (SGD in Caffe's or PyTorch's form) act elementwise, so every network follows the same
trajectory it would alone, up to floating-point summation order. Dropout draws different masks per
network (``randomness="different"``), so a run's masks depend on the runs beside it. The step is one
function that CUDA graphs can capture (``stacked_step``; ``engine.graphs``). Runs of different
losses share a bundle: each network has its own loss parameters (``losses.RunLosses``, mapped by
vmap with it), and its own data order (``samplers``); a bundle of plain cross-entropy runs only
computes ``nn.functional.cross_entropy`` as before. With the protocol's ``augment`` on, each network's
crops and flips are drawn on the host beside its rows, from its own run's seed (``augment``), and
the step reads them from static buffers as it reads the rows.

Each run keeps its own files in the run directory's format (``rundir``), its ``resume.pt`` in this
engine's own layout (``engine: stacked``). Runs whose resume states stand at different iterations (a
bundle of other runs was killed before) are trained in groups, one group per iteration. A group's
files are all written before any is renamed into place, so a kill leaves them at one iteration (short
of the instant of the renames). Models with batch normalisation (ResNet-10) keep running statistics
that ``vmap`` cannot update in place: they go through ``training`` one run at a time.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import augment, losses, rundir
from .atomic import atomic_path, ensure_space
from .batches import upload
from .devices import resolve_device, restore_rng_states, rng_states
from .loop import FRESH, Trainee, train_loop
from .losses import RunLosses
from .optim import (make_optimizer, network_state, restore_stacked_state, saved_network_state, stacked_state,
                    state_tensors)
from .samplers import data_order
from .stacked_conv import with_gemm_convolutions
from .stacked_step import Step

log = logging.getLogger(__name__)

ENGINE = "stacked"


def supports(model: nn.Module) -> bool:
    """Whether a model can be trained stacked: no module keeps state that the step updates in place."""
    return not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


class _Started:
    """A run of the group as it starts: its network, data order, and where its resume state left it."""

    def __init__(self, trainee: Trainee, n_classes: int, input_shape: tuple, pool_labels: np.ndarray | None = None):
        self.trainee, self.n_classes = trainee, n_classes
        self.model = trainee.build_model(n_classes, input_shape)
        self.shuffler = data_order(trainee, pool_labels)
        self.iteration, self.seconds, self.optimizer_state, self.torch_rng, self.divergence = 0, 0.0, {}, None, FRESH
        state = trainee.resume(ENGINE, self.model, self.shuffler)
        if state is not None:
            self.iteration, self.seconds, self.divergence = state["iteration"], state["seconds"], state["divergence"]
            self.optimizer_state = saved_network_state(state, trainee.run.protocol)
            self.torch_rng = state["torch_rng"]
        self.at_stop = self.shuffler.state_dict()  # the data order's state at the last stop

    def write_manifest(self, seconds: float, networks: int, device: torch.device, computation: dict,
                       diverged: dict | None = None) -> dict:
        # train_seconds: the run's share of its group's time (the group's seconds over its networks),
        # so that the runs of a job add up to the time the job trained, as one-at-a-time runs do.
        # computation: how the step ran (engine.conv, and whether it was compiled), for provenance.
        return self.trainee.trained(self.model, self.at_stop["epoch"], self.seconds + seconds / networks,
                                    {"name": ENGINE, "networks_at_once": networks,
                                     "group_train_seconds": round(seconds, 3), **computation}, device, diverged)


class Stacked:
    """K networks of one model and protocol, stacked, each on its own batches."""

    def __init__(self, members: list[_Started], batches, device: torch.device, conv: str = "grouped",
                 graphs: str = "never"):
        self.members, self.batches, self.device = members, batches, device
        self.protocol = protocol = members[0].trainee.run.protocol
        template = members[0].model
        if not supports(template):
            raise ValueError(f"model {members[0].trainee.run.model} has batch normalisation: train it one at a time")
        # Plain tensors, not autograd leaves: the step differentiates them functionally (stacked_step).
        parameters, self.buffers = stack_module_state([member.model.to(device) for member in members])
        self.parameters = {name: tensor.detach() for name, tensor in parameters.items()}
        self.trainable_names = list(self.parameters)
        if members[0].trainee.phase_one is not None:
            layers = members[0].trainee.fine_tuned_layers(template)
            self.trainable_names = [name for name in self.parameters if name.split(".")[0] in layers]
            log.info("second phase: training %s of %d networks", ", ".join(self.trainable_names), len(members))
        # The same parameters under either computation of the convolutions (engine.conv).
        base = (with_gemm_convolutions(template) if conv == "gemm" else copy.deepcopy(template)).to("meta")

        # Each network's loss parameters (losses.RunLosses), or plain cross-entropy for all.
        dtype = next(iter(self.parameters.values())).dtype
        self.loss = RunLosses([member.trainee.run.method.loss for member in members],
                              [member.trainee.class_counts for member in members], members[0].n_classes,
                              protocol.iterations, device, dtype)
        self.loss.start_at(members[0].iteration)

        def plain_loss(params, buffs, loss_parameters, inputs, targets):
            return nn.functional.cross_entropy(functional_call(base, (params, buffs), (inputs,)), targets)

        def general_loss(params, buffs, loss_parameters, inputs, targets):
            return losses.general(functional_call(base, (params, buffs), (inputs,)), targets, **loss_parameters,
                                  terms=self.loss.terms)

        self.losses_of = vmap(plain_loss if self.loss.plain else general_loss, randomness="different")
        self.trainable = [self.parameters[name] for name in self.trainable_names]
        # The optimiser holds the state (momenta, or Adam's moments and step count: what saves write
        # and resumes restore); the step applies its update to the same tensors (optim.update_).
        self.optimizer = make_optimizer(protocol, self.trainable)
        restore_stacked_state(self.optimizer, dict(zip(self.trainable_names, self.trainable)),
                              [member.optimizer_state for member in members])
        if members[0].torch_rng is not None:
            restore_rng_states(members[0].torch_rng, device)
        self.velocities = state_tensors(self.optimizer, protocol)  # the optimiser's state, as update_ takes it
        # What the step reads and writes at fixed addresses: the batch's pool rows, the learning rate
        # (0-d, on the device), the K losses (and the loss parameters, self.loss).
        self.rows = torch.zeros((len(members), protocol.batch_size), dtype=torch.int64, device=device)
        self.lr = torch.zeros((), dtype=dtype, device=device)
        self.last_losses = torch.zeros(len(members), dtype=dtype, device=device)
        # Augmentation (None: off): each network's crop offsets and flips of the step, static too.
        self.augment = augment.training_settings(protocol, batches)
        self.augment_seeds = [augment.run_seed(member.trainee.run) for member in members] if self.augment else []
        self.drawn_to, self.augment_ahead, self.augmentation = members[0].iteration, None, ()
        if self.augment:
            self.offsets = torch.zeros((len(members), protocol.batch_size, 2), dtype=torch.int64, device=device)
            self.flips = torch.zeros((len(members), protocol.batch_size), dtype=torch.bool, device=device)
            self.augmentation = (self.offsets, self.flips)
        self.step_function = Step(self, graphs)
        self.computation = {"conv": conv, "compiled": self.step_function.compile}
        self.ahead, self.manifests = None, {}

    def draw(self, steps: int) -> None:
        batch_size = self.protocol.batch_size
        for member in self.members:
            member.at_stop = member.shuffler.state_dict()
        rows = np.stack([member.shuffler.next_batches(steps, batch_size) for member in self.members], axis=1)
        self.ahead = upload(rows, self.device)  # (steps, K, batch)
        if self.augment:  # (steps, K, batch, 2) and (steps, K, batch), for iterations drawn_to onwards
            draws = augment.draw_networks(self.augment_seeds, self.drawn_to, steps, batch_size,
                                          padding=self.augment["crop_padding"], flip=self.augment["flip"])
            self.augment_ahead = (upload(draws.offsets, self.device), upload(draws.flips, self.device))
        self.drawn_to += steps

    def step(self, step: int, iteration: int, lr: float) -> torch.Tensor:
        """One training step of the K networks (``loop.train_loop``): ``stacked_step.train_step``."""
        self.rows.copy_(self.ahead[step], non_blocking=True)
        if self.augment:
            self.offsets.copy_(self.augment_ahead[0][step], non_blocking=True)
            self.flips.copy_(self.augment_ahead[1][step], non_blocking=True)
        self.lr.fill_(lr)
        self.loss.before_step(iteration)
        return self.step_function(self.rows, self.lr, *self.augmentation)

    def losses(self, inputs, targets) -> torch.Tensor:
        """The K networks' losses on their batches (K, batch, ...), under the weights ``self.parameters``."""
        return self.losses_of(self.parameters, self.buffers, self.loss.parameters, inputs, targets)

    @contextlib.contextmanager
    def weights(self, trainable: dict) -> Iterator[None]:
        """``losses`` computed with the tensors ``trainable`` in place of the trainable weights (as
        ``torch.func.functional_call`` puts tensors in a module's place): the step differentiates them."""
        saved = self.parameters
        self.parameters = {**saved, **trainable}
        try:
            yield
        finally:
            self.parameters = saved

    def finite(self) -> np.ndarray:
        """Per network, whether all its weights are finite (one read of the device for all of them)."""
        finite = torch.stack([torch.isfinite(tensor.detach().reshape(len(self.members), -1)).all(dim=1)
                              for tensor in self.trainable])
        return finite.all(dim=0).cpu().numpy()

    @property
    def divergence(self) -> list[dict]:
        return [member.divergence for member in self.members]

    def describe(self, losses: np.ndarray, diverged: dict) -> str:
        healthy = np.delete(losses, list(diverged))
        text = f"{len(self.members)} networks" + (f" ({len(diverged)} diverged)" if diverged else "")
        if len(healthy):
            text += f", loss mean {healthy.mean():.4f} (min {healthy.min():.4f}, max {healthy.max():.4f})"
        return text

    def diverged(self, network: int, record: dict, seconds: float) -> None:
        """A network that diverged is finished at once (a kill later cannot make it train again); its
        slice of the stack goes on computing, unread, until the group ends."""
        self.manifests[network] = self.members[network].write_manifest(seconds, len(self.members), self.device,
                                                                       self.computation, record)

    def save(self, iteration: int, checkpoint: bool, resume: bool, seconds: float, watch) -> None:
        # Every file is written under a temporary name first and all are renamed together at the
        # end, so that a kill almost never leaves the group's runs at different iterations. A network
        # that diverged is finished: it has no more files.
        weights = sum(tensor.nbytes for tensor in [*self.parameters.values(), *self.buffers.values()])
        ensure_space(self.members[0].trainee.run_dir / "resume.pt", weights * (checkpoint + 2 * resume))
        # Each stacked tensor crosses to the host once (one copy, not one per network); a network's
        # slices are then cloned on the host, so that its files hold only its own weights.
        weights_on_host = {name: tensor.detach().cpu() for name, tensor in {**self.parameters, **self.buffers}.items()}
        named = dict(zip(self.trainable_names, self.trainable))
        optimizer_on_host = stacked_state(self.optimizer, named) if resume else {}
        with contextlib.ExitStack() as renames:
            for position, member in enumerate(self.members):
                if position in watch.at:
                    continue
                trainee = member.trainee
                state = {name: tensor[position].clone() for name, tensor in weights_on_host.items()}
                if checkpoint:
                    temporary = renames.enter_context(atomic_path(rundir.checkpoint_path(trainee.run_dir, iteration)))
                    torch.save({"fingerprint": trainee.fingerprint, "iteration": iteration, "model": state}, temporary)
                if not resume:
                    continue
                temporary = renames.enter_context(atomic_path(trainee.run_dir / "resume.pt"))
                torch.save({"engine": ENGINE, "fingerprint": trainee.fingerprint, "iteration": iteration,
                            "seconds": member.seconds + seconds / len(self.members), "model": state,
                            "optimizer_state": network_state(optimizer_on_host, position),
                            "shuffler": member.at_stop, "torch_rng": rng_states(self.device),
                            "divergence": watch.states[position]}, temporary)


def train_stacked(trainees: list[Trainee], batches, n_classes: int, device: str = "auto",
                  log_every: int = 100, conv: str = "grouped", graphs: str = "never") -> list[dict]:
    """Train ``trainees`` (one model and protocol, all one-phase or all two-phase) at once; return
    their manifests in order. ``batches`` is a ``batches.TensorBatches`` over the dataset's pool.
    ``conv``: the convolutions as vmap makes them (grouped) or as batched matrix products (gemm).
    ``graphs``: whether the step is compiled and captured as CUDA graphs (``stacked_step.compiles``).
    Runs already finished with the same settings are returned as they are.
    """
    if not trainees:
        return []
    protocols = {repr(trainee.run.protocol) for trainee in trainees}
    model_names = {(trainee.run.model, repr(trainee.run.model_options)) for trainee in trainees}
    if len(protocols) > 1 or len(model_names) > 1:
        raise ValueError("a stacked bundle needs one model and one protocol; got "
                         f"{len(model_names)} models and {len(protocols)} protocols")
    if len({(trainee.phase_one is None, trainee.run.method.fine_tuned) for trainee in trainees}) > 1:
        raise ValueError("a stacked bundle cannot mix one-phase and two-phase runs, or second phases of other layers")
    torch_device = resolve_device(device)
    manifests = {position: trainee.finished() for position, trainee in enumerate(trainees)}
    by_iteration: dict[int, list] = {}
    for position, trainee in enumerate(trainees):
        if manifests[position] is None:
            member = _Started(trainee, n_classes, batches.input_shape, batches.labels)
            by_iteration.setdefault(member.iteration, []).append((position, member))
    for start in sorted(by_iteration):
        group = [member for _, member in by_iteration[start]]
        engine = Stacked(group, batches, torch_device, conv, graphs)
        seconds = train_loop(engine, engine.protocol, start, log_every,
                             f"{len(group)} stacked runs of {group[0].trainee.run_dir.parent.parent}", n_classes)
        for network, (position, member) in enumerate(by_iteration[start]):
            manifests[position] = engine.manifests.get(network) or member.write_manifest(
                seconds, len(group), torch_device, engine.computation)
    return [manifests[position] for position in range(len(trainees))]
