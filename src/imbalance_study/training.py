"""Training for a fixed number of iterations, with checkpoints and resumable state.

A run directory holds::

    checkpoints/iter0001000.pt   model weights at each configured iteration
    resume.pt                    everything needed to continue after a kill (not a Snakemake output,
                                 so Snakemake never deletes it when a job fails); removed once the
                                 run is complete
    run.json                     the manifest, written last: its presence means the run is complete

Every state file carries the run's fingerprint (its settings, the index file and the dataset), so a
rerun with other settings starts afresh instead of resuming from stale state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import models
from .atomic import TEMPORARY_PREFIX, atomic_path, file_sha256, write_json  # noqa: F401  (file_sha256 re-exported)
from .imbalance import stable_hash
from .protocol import LR_POLICIES, MOMENTUM_FORMS, Protocol, checkpoint_iterations  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

class CaffeSGD(torch.optim.Optimizer):
    """SGD with momentum in Caffe's form: ``v = m*v + lr*(g + wd*w); w -= v``.

    PyTorch's SGD keeps ``v = m*v + g`` and steps by ``lr*v``; the two differ whenever the learning
    rate changes between iterations, which Caffe's "inv" policy does at every iteration.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                update = parameter.grad.add(parameter, alpha=group["weight_decay"]).mul_(group["lr"])
                state = self.state[parameter]
                if "velocity" in state:
                    update.add_(state["velocity"], alpha=group["momentum"])
                state["velocity"] = update
                parameter.sub_(update)


def make_optimizer(protocol: Protocol, parameters) -> torch.optim.Optimizer:
    if protocol.momentum_form == "caffe":
        return CaffeSGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    return torch.optim.SGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)


class EpochShuffler:
    """Batches drawn in order from a permutation of the index file, reshuffled at each epoch's end.

    A batch that crosses an epoch boundary continues into the next permutation, as Caffe's data layer
    does, so every run sees exactly ``iterations * batch_size`` examples however large its set.
    """

    def __init__(self, indices: np.ndarray, rng: np.random.Generator):
        if len(indices) == 0:
            raise ValueError("the index file is empty: nothing to train on")
        self.indices = np.asarray(indices)
        self.rng = rng
        self.epoch = 0
        self.position = 0
        self.order = self.rng.permutation(self.indices)

    def next_batch(self, size: int) -> np.ndarray:
        parts, needed = [], size
        while needed:
            if self.position == len(self.order):
                self.order = self.rng.permutation(self.indices)
                self.position = 0
                self.epoch += 1
            taken = self.order[self.position: self.position + needed]
            self.position += len(taken)
            needed -= len(taken)
            parts.append(taken)
        return np.concatenate(parts)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "epoch": self.epoch, "position": self.position,
                "order": self.order.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.epoch, self.position, self.order = state["epoch"], state["position"], np.asarray(state["order"])


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run; its JSON form is the run's fingerprint."""

    dataset: str
    profile: str
    seed: int
    method: str
    model: str
    protocol: Protocol
    model_options: dict = field(default_factory=dict)

    def init_seed(self) -> int:
        # Methods of one (dataset, profile, seed) cell share their initial weights: comparisons
        # between methods are then paired.
        sequence = np.random.SeedSequence([self.seed, stable_hash(self.dataset), stable_hash(self.profile)])
        return int(sequence.generate_state(1)[0])

    def data_rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, stable_hash(self.dataset), stable_hash(self.profile),
                                      stable_hash(self.method)])

    def to_dict(self) -> dict:
        settings = asdict(self)
        if settings["protocol"]["precision"] == "fp32":  # runs from before the setting keep their fingerprint
            del settings["protocol"]["precision"]
        return settings


def resolve_device(name: str = "auto") -> torch.device:
    """The device to train on; on CUDA, also let cuDNN pick its fastest kernels and use TF32 matmuls
    (10-bit mantissa products, fp32 accumulation: the README says how to turn both off)."""
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                          "cpu" if name == "auto" else name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast for ``precision`` bf16 (matmuls and convolutions in bf16, fp32 weights,
    losses and updates); a no-op context for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def rng_states(device: torch.device) -> dict:
    """PyTorch's random generators a run draws from (dropout, initialisation): the CPU's, and the
    GPU's when it trains on one, so that a resumed run draws what an uninterrupted one would."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states, device: torch.device) -> None:
    if isinstance(states, torch.Tensor):  # resume states written before the GPU's was kept
        states = {"cpu": states}
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def run_fingerprint(spec: RunSpec, extra: dict) -> str:
    """A run's identity: its settings and inputs (index file, dataset, first phase)."""
    return hashlib.sha256(json.dumps({"spec": spec.to_dict(), **extra}, sort_keys=True).encode()).hexdigest()


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return run_dir / "checkpoints" / f"iter{iteration:07d}.pt"


def _save(payload: dict, path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def _load_resume_state(path: Path, fingerprint: str) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a state file that cannot be read is discarded, never trusted
        log.warning("ignoring unreadable resume state %s (%s); starting afresh", path, error)
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("resume state %s belongs to other settings; starting afresh", path)
        return None
    return state


ONE_AT_A_TIME = "one_at_a_time"


def save_points(protocol: Protocol, log_every: int) -> list[int]:
    """Iterations after which training writes (checkpoints, resume state) or logs. Between two of
    them nothing is read back from the device, so a GPU never waits on the host."""
    every = set(range(protocol.resume_every, protocol.iterations + 1, protocol.resume_every))
    every |= set(range(log_every, protocol.iterations + 1, log_every))
    return sorted(every | set(protocol.checkpoints) | {protocol.iterations})


def effective_extra(extra: dict, phase_one: dict | None) -> dict:
    """A run's inputs for its fingerprint: a second phase also depends on its first phase."""
    return extra if phase_one is None else {**extra, "phase_one_fingerprint": phase_one["fingerprint"]}


def start_run(run_dir: Path, fingerprint: str, engine: str) -> dict | None:
    """Clear what a killed job left half-written and return the run's resume state, when it exists,
    matches the fingerprint and was written by ``engine`` (the engines keep momentum and random
    state differently). Without one, checkpoints of earlier settings are removed: the run starts
    afresh."""
    for half_written in run_dir.rglob(f"{TEMPORARY_PREFIX}*"):
        half_written.unlink()
    state = _load_resume_state(run_dir / "resume.pt", fingerprint)
    if state is not None and state.get("engine", ONE_AT_A_TIME) != engine:
        log.info("resume state of %s was written by the %s engine, not %s; starting afresh", run_dir,
                 state.get("engine", ONE_AT_A_TIME), engine)
        state = None
    if state is None:
        for stale in (run_dir / "checkpoints").glob("iter*.pt"):
            stale.unlink()
    return state


def write_run_manifest(spec: RunSpec, fingerprint: str, extra: dict, run_dir: Path, manifest_path, *,
                       training_examples: int, trained_layers, epochs_started: int, train_seconds: float,
                       engine: dict, device: torch.device) -> dict:
    """Write run.json, the sign that a run is complete, then drop its resume state (it would double
    the run's disk use)."""
    manifest = {
        "fingerprint": fingerprint,
        "spec": spec.to_dict(),
        "inputs": extra,
        "training_examples": int(training_examples),
        "trained_layers": trained_layers,
        "epochs_started": epochs_started,
        "train_seconds": round(train_seconds, 3),
        "engine": engine,
        "device": str(device),
        "checkpoints": [{"iteration": c, "path": str(checkpoint_path(run_dir, c)),
                         "sha256": file_sha256(checkpoint_path(run_dir, c))} for c in sorted(spec.protocol.checkpoints)],
        "software": software_versions(),
    }
    write_json(manifest_path, manifest)
    (run_dir / "resume.pt").unlink(missing_ok=True)
    return manifest


def freeze_all_but(model: nn.Module, layer_names: tuple[str, ...]) -> list[nn.Parameter]:
    """Make only the named layers trainable (two-phase fine-tuning); returns their parameters."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = []
    for name in layer_names:
        for parameter in getattr(model, name).parameters():
            parameter.requires_grad_(True)
            trainable.append(parameter)
    return trainable


class TensorBatches:
    """Batches of an in-memory dataset: the whole pool lives on the device, a batch is one gather,
    with no loader and no host copies."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device):
        self.inputs = models.to_input(torch.from_numpy(images)).to(device)
        self.targets = torch.from_numpy(labels).to(device)
        self.device = device
        self.input_shape = tuple(images.shape[1:])
        # Image batches go channels-last (NHWC), the layout oneDNN's and cuDNN's fastest convolution
        # kernels take: on 2 CPU cores it trains LeNet-5 about 1.5x faster (scripts/benchmark.py).
        self.channels_last = self.inputs.ndim == 4

    def __call__(self, batch: np.ndarray, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gather(torch.from_numpy(batch).to(self.device))

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of pool rows already on the device: a batch (B,), or K runs' batches (K, B)."""
        inputs = self.inputs[rows]
        if self.channels_last and rows.ndim == 1:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, self.targets[rows]


class ImageFolderBatches:
    """Batches of an image-folder dataset (ImageNet), decoded and augmented on the fly by threads.

    Each example's crop and flip are drawn from a seed derived from (run, iteration, slot), so a
    resumed run sees exactly the augmentations an uninterrupted one would, whatever the threads do.
    """

    def __init__(self, dataset, run_seed: int, device: torch.device, threads: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        from .datasets import ImageFolderSubset

        self.subset = ImageFolderSubset(dataset, "train", train=True, resize=dataset.resize, crop=dataset.crop)
        self.run_seed, self.device = run_seed, device
        self.input_shape = dataset.image_shape
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def __call__(self, batch: np.ndarray, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        keys = [(int(index), int(np.random.SeedSequence([self.run_seed, iteration, slot]).generate_state(1)[0]))
                for slot, index in enumerate(batch)]
        items = list(self.pool.map(self.subset.__getitem__, keys))
        inputs = torch.stack([image for image, _ in items]).to(self.device, non_blocking=True)
        targets = torch.tensor([label for _, label in items], dtype=torch.int64).to(self.device)
        return inputs, targets


def train(spec: RunSpec, images: np.ndarray | None, labels: np.ndarray, indices: np.ndarray, run_dir: str | Path,
          manifest_path: str | Path, fingerprint_extra: dict, device: str = "auto", log_every: int = 100,
          phase_one: dict | None = None, batches=None) -> dict:
    """Train one run, resuming from ``run_dir/resume.pt`` when it matches, and write the manifest last.

    With ``phase_one`` (the manifest of a finished run), the run is the second phase of two-phase
    training: it starts from that run's last checkpoint and trains only the model's output layers.
    ``batches`` turns a batch of pool indices into (inputs, targets) on the device; by default the
    in-memory ``images`` are used (image folders pass their own loader, with ``images`` None).
    """
    run_dir = Path(run_dir)
    protocol = spec.protocol
    torch_device = resolve_device(device)
    torch.manual_seed(spec.init_seed())
    n_classes = int(labels.max()) + 1
    if batches is None:
        batches = TensorBatches(images, labels, torch_device)
    model = models.build(spec.model, n_classes, batches.input_shape, spec.model_options).to(torch_device)
    if getattr(batches, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    parameters = list(model.parameters())
    if phase_one is not None:
        load_checkpoint(phase_one["checkpoints"][-1], model, phase_one["fingerprint"])
        parameters = freeze_all_but(model, model.output_layers)
    fingerprint_extra = effective_extra(fingerprint_extra, phase_one)
    fingerprint = run_fingerprint(spec, fingerprint_extra)
    finished = finished_manifest(manifest_path, fingerprint)
    if finished is not None:  # a job that trained it was killed later, while scoring
        log.info("%s is already trained with these settings", run_dir)
        return finished
    optimizer = make_optimizer(protocol, parameters)
    shuffler = EpochShuffler(indices, spec.data_rng())

    resume_path = run_dir / "resume.pt"
    state = start_run(run_dir, fingerprint, ONE_AT_A_TIME)
    iteration, seconds = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffler.load_state_dict(state["shuffler"])
        restore_rng_states(state["torch_rng"], torch_device)
        iteration, seconds = state["iteration"], state["seconds"]
        log.info("resuming %s at iteration %d of %d", run_dir, iteration, protocol.iterations)

    def save_resume_state():
        _save({"engine": ONE_AT_A_TIME, "fingerprint": fingerprint, "iteration": iteration, "seconds": seconds,
               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "shuffler": shuffler.state_dict(), "torch_rng": rng_states(torch_device)}, resume_path)

    checkpoints = set(protocol.checkpoints)
    model.train()
    if phase_one is not None:
        # Frozen layers keep their first-phase normalisation statistics too.
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    started = time.perf_counter()
    stops = save_points(protocol, log_every)
    in_memory = hasattr(batches, "gather")  # then the indices up to the next stop go to the device at once
    while iteration < protocol.iterations:
        stop = next(point for point in stops if point > iteration)
        if in_memory:
            ahead = torch.from_numpy(np.stack([shuffler.next_batch(protocol.batch_size)
                                               for _ in range(stop - iteration)])).to(torch_device)
        for step in range(stop - iteration):
            if in_memory:
                inputs, targets = batches.gather(ahead[step])
            else:
                inputs, targets = batches(shuffler.next_batch(protocol.batch_size), iteration + step)
            for group in optimizer.param_groups:
                group["lr"] = protocol.learning_rate(iteration + step)
            with autocast(torch_device, protocol.precision):
                loss = nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        iteration = stop
        if iteration % log_every == 0 or iteration == protocol.iterations:
            log.info("iteration %d loss %.4f lr %.6f epoch %d", iteration, loss.item(),
                     protocol.learning_rate(iteration - 1), shuffler.epoch)
        if iteration in checkpoints:
            _save({"fingerprint": fingerprint, "iteration": iteration, "model": model.state_dict()},
                  checkpoint_path(run_dir, iteration))
        if iteration in checkpoints or iteration % protocol.resume_every == 0:
            now = time.perf_counter()
            seconds, started = seconds + now - started, now
            save_resume_state()

    return write_run_manifest(spec, fingerprint, fingerprint_extra, run_dir, manifest_path,
                              training_examples=len(indices),
                              trained_layers=list(model.output_layers) if phase_one is not None else "all",
                              epochs_started=shuffler.epoch + 1, train_seconds=seconds,
                              engine={"name": ONE_AT_A_TIME, "networks_at_once": 1}, device=torch_device)


def finished_manifest(manifest_path: str | Path, fingerprint: str) -> dict | None:
    """The manifest of a finished run with this fingerprint whose checkpoints are all there, unaltered
    (sha256), else None."""
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        return None
    if manifest.get("fingerprint") != fingerprint:
        return None
    for entry in manifest.get("checkpoints", []):
        if not Path(entry["path"]).exists() or file_sha256(entry["path"]) != entry["sha256"]:
            return None
    return manifest


def software_versions() -> dict:
    """Versions recorded in every run manifest (from package metadata: importing costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("imbalance-study", "torch", "numpy", "h5py"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def load_checkpoint(entry: dict, model: nn.Module, fingerprint: str) -> None:
    """Load a checkpoint listed in a manifest, refusing one that was altered or belongs to another run."""
    path = Path(entry["path"])
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint listed in the run manifest is missing")
    if file_sha256(path) != entry["sha256"]:
        raise ValueError(f"{path}: checkpoint does not match the checksum in its run manifest (truncated or replaced)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["fingerprint"] != fingerprint:
        raise ValueError(f"{path}: checkpoint belongs to another run")
    model.load_state_dict(payload["model"])
