"""Measurements of the training engines that predict their behaviour on a GPU, taken on any device.

A GPU spends a small network's step launching kernels, waits at every stop while the host draws
the next batches, and a cluster filesystem suffers from many small files. Each is measured here by a
proxy that does not need the GPU: the operators PyTorch dispatches per step (``operators_per_step``,
from ``torch.profiler``, ``dispatched``: on CUDA each is at least one kernel launch), the host's seconds to draw and
upload a stop's batches (``host_seconds_per_stop``) and the files and bytes a job writes
(``files_written``). ``scripts/benchmark.py`` prints them; the tests hold the engine to them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import imbalance, plan, stacked, training
from .batches import EpochShuffler, TensorBatches, upload
from .loop import Trainee
from .method import Method
from .protocol import Protocol
from .sampling import IMBALANCED


def probe_run(seed: int, iterations: int, batch_size: int = 64, model: str = "lenet5", **protocol) -> plan.Run:
    """A baseline run of the paper's MNIST protocol (Caffe's SGD, inv policy; LeNet-5 unless ``model``
    says otherwise) on a set the caller gives it."""
    settings = dict(iterations=iterations, batch_size=batch_size, lr=0.01, momentum=0.9, weight_decay=5e-4,
                    momentum_form="caffe", lr_policy={"name": "inv", "gamma": 1e-4, "power": 0.75},
                    checkpoints=[iterations], resume_every=iterations, precision="fp32")
    settings.update(protocol)
    protocol_ = Protocol.from_config(settings)
    method = Method(name="baseline", variant="baseline", sampler="none", ratio=1.0, index=IMBALANCED,
                    protocol=protocol_, base_lr=protocol_.lr)
    return plan.Run("probe", imbalance.step(0.5, 10), seed, method, model)


def _train(batches, labels, networks: int, iterations: int, workdir: Path, device: str, stack: bool, **protocol):
    runs = [probe_run(seed, iterations, **protocol) for seed in range(networks)]
    trainees = [Trainee(run, np.arange(len(labels)), Path(tempfile.mkdtemp(dir=workdir))) for run in runs]
    if stack:
        return stacked.train_stacked(trainees, batches, int(labels.max()) + 1, device=device, log_every=10 ** 9)
    return [training.train(trainee, batches, int(labels.max()) + 1, device=device, log_every=10 ** 9)
            for trainee in trainees]


def operators_per_step(batches, labels, networks: int, workdir: Path, device: str = "cpu", stack: bool = True,
                       steps: tuple[int, int] = (4, 12), **protocol) -> float:
    """Operators PyTorch dispatches per training step of ``networks`` stacked networks (or of one
    network alone, ``stack=False``): counted over two runs of different lengths with one stop each,
    whose difference is the steps alone (the start, the stop and the save cancel out)."""
    from torch.profiler import ProfilerActivity, profile

    counts = []
    for iterations in steps:
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            _train(batches, labels, networks if stack else 1, iterations, workdir, device, stack, **protocol)
        counts.append(dispatched(profiler.events()))
    return (counts[1] - counts[0]) / (steps[1] - steps[0])


def dispatched(events) -> int:
    """Operators dispatched from Python or from autograd, not from inside another operator: on CUDA
    each launches its own kernel(s), while the operators a CPU kernel calls inside itself (a
    ``_foreach_`` operation's per-tensor loop on the CPU; one multi-tensor kernel on CUDA) do not."""
    def operator(event) -> bool:
        return event is not None and event.name.startswith("aten::")

    return sum(1 for event in events if operator(event) and not operator(event.cpu_parent))


def host_seconds_per_stop(n_examples: int, networks: int, steps: int, batch_size: int, device: torch.device,
                          repeats: int = 3) -> dict:
    """Host seconds to draw the batch indices of one stop (``steps`` steps of ``networks`` runs) and
    start their upload: as the engine draws them (one vectorised draw per run) and batch by batch
    (one ``next_batch`` per step and run, as before), best of ``repeats``."""
    def timed(draw) -> float:
        best = float("inf")
        for _ in range(repeats):
            shufflers = [EpochShuffler(np.arange(n_examples), np.random.default_rng(seed)) for seed in range(networks)]
            started = time.perf_counter()
            rows = np.stack([draw(shuffler) for shuffler in shufflers], axis=1)
            upload(rows, device)
            best = min(best, time.perf_counter() - started)
        return best

    return {"vectorised": timed(lambda shuffler: shuffler.next_batches(steps, batch_size)),
            "batch by batch": timed(lambda shuffler: np.stack([shuffler.next_batch(batch_size)
                                                               for _ in range(steps)]))}


def files_written(images: np.ndarray, labels: np.ndarray, networks: int, iterations: int, checkpoints: int,
                  resume_every: int, workdir: Path, device: str = "cpu") -> dict:
    """Files and bytes one stacked job of ``networks`` LeNet-5 runs writes on the way (every write
    is a temporary file renamed into place: ``atomic.atomic_path``, so the renames are counted) and
    leaves in its run directories at the end."""
    from unittest import mock

    written = {"files": 0, "bytes": 0}
    rename = os.replace

    def counted(source, destination):
        written["files"] += 1
        written["bytes"] += os.path.getsize(source)
        rename(source, destination)

    spacing = {"spacing": "log", "count": checkpoints, "first": max(1, iterations // 100)}
    batches = TensorBatches(images, labels, torch.device(device))
    base = Path(tempfile.mkdtemp(dir=workdir))
    runs = [probe_run(seed, iterations, checkpoints=spacing, resume_every=resume_every) for seed in range(networks)]
    trainees = [Trainee(run, np.arange(len(labels)), base / str(seed)) for seed, run in enumerate(runs)]
    with mock.patch("os.replace", counted):
        stacked.train_stacked(trainees, batches, int(labels.max()) + 1, device=device, log_every=10 ** 9)
    left = [path for path in base.rglob("*") if path.is_file()]
    return {"files written": written["files"], "bytes written": written["bytes"], "files left": len(left),
            "bytes left": sum(path.stat().st_size for path in left)}
