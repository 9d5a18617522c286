"""What the long-tail losses cost per training step against plain cross-entropy (issue 14: at most 10%).

    .venv/bin/python scripts/benchmark_losses.py --threads 1      # CPU, about 3 minutes
    .venv/bin/python scripts/benchmark_losses.py --threads 1 --models digits_cnn --seconds 60
    .venv/bin/python scripts/benchmark_losses.py --device cuda --samples 200

For the default study's model (digits_cnn, 8x8 inputs, batch 32) and LeNet-5 (28x28, batch 64), each
loss trains one network alone (the one-at-a-time engine) and K = 8 networks of that loss stacked
(the stacked engine, eager), on random images of 10 classes with step-imbalanced counts (rho 10).
A step is timed through the engine's own ``step`` (batch gather, forward, loss, backward, update),
so the figure is what a run pays, not the loss alone. The losses take turns, one step each in a
new random order every turn, and each one's median step is reported, so that the load of a shared
machine falls on all of them alike; they take at least ``--samples`` turns and go on for at least
``--seconds`` (a small network's steps are short: 30 of them give a median that moves by several
percent from run to run on a loaded machine). Ratios are to plain cross-entropy measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS.parent / "src"), str(SCRIPTS)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from imbalance_study import probes, stacked, training  # noqa: E402
from imbalance_study.batches import TensorBatches  # noqa: E402
from imbalance_study.devices import resolve_device  # noqa: E402
from imbalance_study.loop import Trainee  # noqa: E402

# Every key present, as the schema's defaults fill them (LDAM's scale 1: a plain linear output layer).
BASE = {"weights": "none", "beta": 0.9999, "weights_from": 0.0, "gamma": 2.0, "max_margin": 0.5, "scale": 1.0,
        "tau": 1.0}
LOSSES = {
    "cross_entropy": {"name": "cross_entropy"},
    "weighted_ce": {"name": "cross_entropy", "weights": "inverse"},
    "effective_number_ce": {"name": "cross_entropy", "weights": "effective_number"},
    "focal": {"name": "focal"},
    "ldam_drw": {"name": "ldam", "weights": "effective_number", "weights_from": 0.8},
    "logit_adjusted": {"name": "logit_adjusted"},
    "balanced_softmax": {"name": "balanced_softmax"},
}
MODELS = {"digits_cnn": ((8, 8), 32), "lenet5": ((28, 28), 64)}
N_CLASSES = 10


def data(image_shape: tuple, per_class: int = 200):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(N_CLASSES), per_class)
    images = rng.integers(0, 256, size=(len(labels), *image_shape), dtype=np.uint8)
    # Step imbalance, rho 10: half the classes keep a tenth of their examples.
    keep = np.concatenate([np.flatnonzero(labels == c)[: per_class if c < 5 else per_class // 10]
                           for c in range(N_CLASSES)])
    return images, labels, keep


def engine_of(loss: str, model: str, networks: int, batches, labels, keep, device, workdir: Path):
    image_shape, batch_size = MODELS[model]
    run = probes.probe_run(0, 10_000, batch_size=batch_size, model=model)
    run = dataclasses.replace(run, method=dataclasses.replace(run.method, loss={**BASE, **LOSSES[loss]}))
    counts = np.bincount(labels[keep], minlength=N_CLASSES)
    trainees = [Trainee(dataclasses.replace(run, seed=seed), keep, Path(tempfile.mkdtemp(dir=workdir)),
                        class_counts=counts) for seed in range(networks)]
    if networks == 1:
        return training.OneAtATime(trainees[0], batches, N_CLASSES, device)
    members = [stacked._Started(trainee, N_CLASSES, image_shape, labels) for trainee in trainees]
    return stacked.Stacked(members, batches, device)


def measure(model: str, networks: int, samples: int, seconds: float, device,
            workdir: Path) -> tuple[dict[str, float], int]:
    """Median seconds per step of each loss, and the turns taken: single steps taken in turns (one
    step of each loss, in a new random order each turn), at least ``samples`` turns and for at least
    ``seconds``."""
    images, labels, keep = data(MODELS[model][0])
    batches = TensorBatches(images, labels, device)
    engines = {loss: engine_of(loss, model, networks, batches, labels, keep, device, workdir) for loss in LOSSES}
    warmup = 3  # lazy initialisations, the allocator's first blocks
    for engine in engines.values():
        engine.draw(warmup)
        for step in range(warmup):
            engine.step(step, step, 0.01)
    times: dict[str, list[float]] = {loss: [] for loss in LOSSES}
    order = np.random.default_rng(0)
    started_at = time.perf_counter()
    sample, chunk = 0, max(samples, 100)
    while sample < samples or time.perf_counter() - started_at < seconds:
        if sample % chunk == 0:  # the next batches of every engine, drawn outside the timed steps
            for engine in engines.values():
                engine.draw(chunk)
        for loss in order.permutation(list(LOSSES)):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            engines[loss].step(sample % chunk, warmup + sample, 0.01)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[loss].append(time.perf_counter() - started)
        sample += 1
    return {loss: statistics.median(values) for loss, values in times.items()}, sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=30, help="steps timed per loss at least; the median is reported")
    parser.add_argument("--seconds", type=float, default=15.0, help="each setting's turns go on for at least this long")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's choice)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="the models timed")
    parser.add_argument("--target", type=float, default=0.10, help="largest overhead over plain cross-entropy")
    arguments = parser.parse_args()
    device = resolve_device(arguments.device)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    missed = []
    with tempfile.TemporaryDirectory(prefix="benchmark-losses-") as workdir:
        for model in arguments.models:
            for networks in (1, 8):
                seconds, turns = measure(model, networks, arguments.samples, arguments.seconds, device,
                                         Path(workdir))
                plain = seconds["cross_entropy"]
                engine = "one at a time" if networks == 1 else f"stacked K={networks}"
                print(f"{model} [{device.type}] {engine}: cross_entropy {plain * 1e3:.2f} ms/step "
                      f"(medians of {turns} steps each)")
                for loss, value in seconds.items():
                    if loss == "cross_entropy":
                        continue
                    ratio = value / plain
                    print(f"  {loss:<22} {value * 1e3:7.2f} ms/step  {ratio:5.2f}x")
                    if ratio > 1 + arguments.target:
                        missed.append(f"{model} {engine} {loss}: {ratio:.2f}x")
    if missed:
        print(f"over the target ({1 + arguments.target:.2f}x): " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
