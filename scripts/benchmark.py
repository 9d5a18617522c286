"""Speed of the study's engine and workflow, measured against baselines in the same run.

    .venv/bin/python scripts/benchmark.py             # everything (about 10 minutes on 2 CPU cores)
    .venv/bin/python scripts/benchmark.py --quick     # fewer iterations, no default study

What it measures, on this machine (and on CUDA too when there is a GPU):

1. engine     LeNet-5 training at batch 64 on real MNIST: a naive loop (torchvision.datasets.MNIST
              with ToTensor, a shuffling DataLoader, model and batches in PyTorch's default layout)
              against the study's engine (the pool resident on the device as one tensor, one gather
              per batch, channels-last, Caffe's SGD): images/s of each and their ratio.
2. stacked    K = 1, 8, 64 LeNet-5s trained at once as one stacked network (torch.func.vmap), in
              images/s summed over the K networks, against one network at a time.
3. projection the device-hours the paper's MNIST grid (22,500 networks x 10,000 iterations x 64
              images) would take at the best throughput measured.
4. scoring    images/s of scoring (inference and every score), and what scoring a run's 8
              checkpoints costs relative to training it for 10,000 iterations, for the mean and the
              largest run of the paper's MNIST grid as configured (its test set plus the distinct
              examples of its training set, at most scoring.train_sample_per_class per class), for
              the largest run scored on every distinct training example, and on the test set alone.
5. dry run    `snakemake -n` of configs/paper_mnist.yaml (22,500 networks): seconds and peak memory.
6. study      the default study (config.yaml) from nothing: minutes, end to end.
7. bf16       on CUDA (and on the CPU with --bf16-check): 3 LeNet-5 runs trained in fp32 and under
              bf16 autocast (protocol precision: bf16); their final test accuracies must agree
              within 0.01, the guard for using bf16 in a study.
8. engine     scripts/benchmark_engine.py: operators per stacked step for K = 1, 8, 64 (flat in K),
   proxies    host seconds per stop, files and bytes per job, grouped against GEMM convolutions.

On CUDA every timing starts after a warm-up at its real shapes (cuDNN's kernel search, the caching
allocator) and reads the clock after torch.cuda.synchronize(); the naive loop runs with the same
TF32 and cuDNN settings as the engine (devices.resolve_device). `--devices cuda` skips the CPU
figures, so that a GPU session spends its minutes on the GPU.

It exits with status 1 when a target is missed: engine ratio >= 1.5, scoring < 10% of training
(the grid's largest run, as configured), dry run < 10 s and < 1 GB, default study < 5 min, bf16
within 0.01 of fp32. BENCHMARKS.md keeps the last figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "scripts")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import benchmark_engine  # noqa: E402

from imbalance_study import imbalance, metrics, models, plan, rundir, scoring, stacked, training  # noqa: E402
from imbalance_study.batches import TensorBatches  # noqa: E402
from imbalance_study.devices import resolve_device  # noqa: E402
from imbalance_study.loop import Trainee  # noqa: E402
from imbalance_study.probes import probe_run  # noqa: E402
from imbalance_study.protocol import Protocol  # noqa: E402

BATCH = 64
PAPER_NETWORKS, PAPER_ITERATIONS = 22_500, 10_000


def mnist(root: Path, train: bool = True):
    """An official MNIST split through torchvision (copied from ../shared/data offline)."""
    import torchvision

    from imbalance_study.datasets import copy_raw_files

    shared = REPO.parent / "shared" / "data"
    if not (root / "MNIST" / "raw").is_dir() and (shared / "MNIST" / "raw").is_dir():
        copy_raw_files(shared, root, "MNIST")
    return torchvision.datasets.MNIST(str(root), train=train, download=True,
                                      transform=torchvision.transforms.ToTensor())


def clock(device: torch.device) -> float:
    """The time, once the device has finished what it was given (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def naive_loop(dataset, iterations: int, device: torch.device, warmup: int = 0) -> float:
    """What a first PyTorch script does: DataLoader + ToTensor, default layout, torch.optim.SGD
    (with the engine's TF32 and cuDNN settings on CUDA: ``device`` comes from resolve_device)."""
    torch.manual_seed(0)
    model = models.build("lenet5", 10, (28, 28)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    for images, labels in loader:  # warm-up steps, not timed
        if warmup == 0:
            break
        torch.nn.functional.cross_entropy(model(images.to(device)), labels.to(device)).backward()
        optimizer.step()
        optimizer.zero_grad()
        warmup -= 1
    started, done = clock(device), 0
    while done < iterations:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == iterations:
                break
    return iterations * BATCH / (clock(device) - started)


def engine_loop(images, labels, iterations: int, device: torch.device, workdir: Path) -> float:
    """The study's one-at-a-time engine (training.train), timed by its own loop clock."""
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    manifest = training.train(Trainee(probe_run(1, iterations, BATCH), np.arange(len(labels)), run_dir),
                              TensorBatches(images, labels, device), 10, device=str(device))
    return iterations * BATCH / manifest["train_seconds"]


def stacked_loop(batches, labels, k: int, iterations: int, device: torch.device, workdir: Path) -> float:
    """K networks at once (stacked.train_stacked): images/s summed over the K networks."""
    base = Path(tempfile.mkdtemp(dir=workdir))
    trainees = [Trainee(probe_run(seed, iterations, BATCH), np.arange(len(labels)), base / str(seed)) for seed in range(k)]
    manifests = stacked.train_stacked(trainees, batches, 10, device=str(device))
    # The group's time: each run's train_seconds is its share of it.
    return k * iterations * BATCH / manifests[0]["engine"]["group_train_seconds"]


def scoring_rate(images, labels, device: torch.device) -> float:
    """Images/s of scoring: LeNet-5 log-probabilities (channels-last, in the batches scoring.score_run
    uses) and every score of the split, on 10,000 test and 27,500 training images."""
    from imbalance_study.scoring import _device_input

    model = models.build("lenet5", 10, (28, 28)).to(device).to(memory_format=torch.channels_last)
    test, train = _device_input(images[:10_000], device), _device_input(images[10_000:37_500], device)
    counts = np.bincount(labels[:37_500], minlength=10)
    minority = np.arange(10) >= 5
    batch = 256 if device.type == "cpu" else 4096  # as scoring._evaluator
    scoring.log_probabilities(model, test[: 2 * batch], batch_size=batch)  # warm-up at the chunks' shape
    started = clock(device)
    for inputs, split_labels in ((test, labels[:10_000]), (train, labels[10_000:37_500])):
        metrics.score(scoring.log_probabilities(model, inputs, batch_size=batch), split_labels, counts, minority, 1,
                      "test")
    return 37_500 / (clock(device) - started)


def grid_scoring_images() -> dict:
    """Images scored per checkpoint by the runs of configs/paper_mnist.yaml (test set plus the
    distinct examples of each run's training set, at most scoring.train_sample_per_class of a
    majority class): the mean over the grid and the largest, as configured and with every distinct
    example."""
    import yaml

    from imbalance_study.config import validate

    config = yaml.safe_load((REPO / "configs" / "paper_mnist.yaml").read_text())
    validate(config)
    spec = config["datasets"]["mnist"]
    cap, test = spec["train_per_class"], 10 * spec["test_per_class"]
    sample = config["scoring"]["train_sample_per_class"]
    configured, every = [], []
    for run in plan.resolve(config).runs:
        counts = imbalance.class_counts(run.profile, 10, cap, spec["minority_classes"], run.seed)
        minority = imbalance.minority_mask(counts)  # never sampled (scoring.train_split_rows)
        if run.method.index.sampler == "under":  # (a second phase trains on the imbalanced set)
            counts = np.full(10, counts.min())
        every.append(test + counts.sum())
        configured.append(test + (np.where(minority, counts, np.minimum(counts, sample)).sum() if sample
                                  else counts.sum()))
    checkpoints = len(Protocol.from_config(config["protocols"]["mnist_lenet5"]).checkpoints)
    return {"mean": float(np.mean(configured)), "largest": int(np.max(configured)), "sample": sample,
            "largest, every distinct example": int(np.max(every)), "checkpoints": checkpoints}


def bf16_check(dataset, test_set, device: torch.device, workdir: Path, runs: int = 3, iterations: int = 600) -> dict:
    """Final test accuracy of the same runs trained in fp32 and under bf16 autocast."""
    images, labels = dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)
    test_inputs = models.to_input(test_set.data).to(device)
    test_labels = test_set.targets.numpy()
    accuracies = {}
    for precision in ("fp32", "bf16"):
        values = []
        for seed in range(runs):
            run_dir = Path(tempfile.mkdtemp(dir=workdir))
            manifest = training.train(Trainee(probe_run(seed, iterations, BATCH, precision=precision),
                                                      np.arange(len(labels)), run_dir),
                                      TensorBatches(images, labels, device), 10, device=str(device))
            model = models.build("lenet5", 10, (28, 28)).to(device)
            rundir.load_checkpoint(manifest["checkpoints"][-1], model, manifest["fingerprint"])
            predictions = scoring.log_probabilities(model, test_inputs).argmax(axis=1)
            values.append(float(np.mean(predictions == test_labels)))
        accuracies[precision] = values
    return accuracies


def dry_run_cost(workdir: Path) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of `snakemake -n` on the paper's MNIST grid.

    The memory comes from GNU time (/usr/bin/time): the peak that getrusage reports for a child of
    this process would include this process's own pages, which a forked child starts with.
    """
    target = workdir / "dry"
    target.mkdir()
    report = workdir / "dry-run.time"
    command = [str(Path(sys.executable).parent / "snakemake"), "-n", "-q", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(target), "--configfile", str(REPO / "configs" / "paper_mnist.yaml")]
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"the dry run failed:\n{result.stderr[-3000:]}")
    peak_kb = int(report.read_text().split()[-1])
    return seconds, peak_kb / 1024 ** 2


def default_study_minutes(workdir: Path) -> float:
    target = workdir / "study"
    target.mkdir()
    started = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(target), "--configfile", str(REPO / "config.yaml"), "--cores", "2"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the default study failed:\n{result.stderr[-3000:]}")
    return (time.perf_counter() - started) / 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations; skip the default study")
    parser.add_argument("--mnist-root", default=str(REPO / "data" / "torchvision"),
                        help="torchvision root for MNIST (filled from ../shared/data when empty)")
    parser.add_argument("--bf16-check", action="store_true",
                        help="also on the CPU: train 3 runs in fp32 and bf16 and compare (always done on CUDA)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for PyTorch")
    parser.add_argument("--no-workflow", action="store_true",
                        help="skip the dry run and the default study (for a GPU machine without Snakemake)")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"],
                        help="where to measure (default: the CPU, and CUDA when there is a GPU)")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    iterations = 150 if arguments.quick else 600
    names = arguments.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [resolve_device(name) for name in names]
    failures = []
    print(f"# benchmark {time.strftime('%Y-%m-%d %H:%M')}; {platform.node()}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {arguments.threads} PyTorch threads; torch {torch.__version__}")
    for device in devices:
        if device.type == "cuda":
            print(f"# GPU: {torch.cuda.get_device_name(device)}")
    dataset = mnist(Path(arguments.mnist_root))
    images, labels = dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)
    workdir = Path(tempfile.mkdtemp(prefix="benchmark-"))
    grid = grid_scoring_images()
    best = {}
    try:
        for device in devices:
            scale = 10 if device.type == "cuda" else 1
            warmup = 20 if device.type == "cuda" else 0  # steps at the real shapes before any clock starts
            naive = naive_loop(dataset, iterations, device, warmup)
            if warmup:
                engine_loop(images, labels, warmup, device, workdir)
            ours = engine_loop(images, labels, iterations * scale, device, workdir)
            ratio = ours / naive
            print(f"engine [{device.type}] naive DataLoader loop {naive:,.0f} images/s; study engine {ours:,.0f} "
                  f"images/s; ratio {ratio:.2f} (target >= 1.5)")
            if device.type == "cpu" and ratio < 1.5:
                failures.append(f"engine ratio {ratio:.2f} < 1.5")
            best[device.type] = ours
            batches = TensorBatches(images, labels, device)
            for k in (1, 8, 64):
                steps = max(3, (iterations * scale) // k) if device.type == "cpu" else iterations * scale
                if warmup:
                    stacked_loop(batches, labels, k, warmup, device, workdir)
                rate = stacked_loop(batches, labels, k, steps, device, workdir)
                print(f"stacked [{device.type}] K={k:>2}: {rate:,.0f} images/s over {k} networks "
                      f"({rate / ours:.2f}x one network at a time)")
                best[device.type] = max(best[device.type], rate)
            rate = scoring_rate(images, labels, device)
            train_seconds = PAPER_ITERATIONS * BATCH / ours
            # Stacked training shortens a run's training, not its scoring: its share at the best rate.
            stacked_seconds = PAPER_ITERATIONS * BATCH / best[device.type]
            sampled = f"train split <= {grid['sample']:,} per majority class" if grid["sample"] else "every training example"
            # (what, images per checkpoint, whether the < 10% target applies: the largest run as configured)
            for what, count, target in (
                    (f"grid mean ({sampled})", grid["mean"], False), (f"largest run ({sampled})", grid["largest"], True),
                    ("largest run, every distinct training example", grid["largest, every distinct example"], False),
                    ("test split only", 10_000, False)):
                share = grid["checkpoints"] * count / rate / train_seconds
                stacked_share = grid["checkpoints"] * count / rate / stacked_seconds
                print(f"scoring [{device.type}] {rate:,.0f} images/s; {what}: {grid['checkpoints']} checkpoints x "
                      f"{count:,.0f} images = {100 * share:.1f}% of training 10,000 iterations one at a time, "
                      f"{100 * stacked_share:.1f}% at the best stacked rate (target < 10%)")
                if target and share >= 0.10:
                    failures.append(f"scoring {100 * share:.1f}% of training >= 10% on {device.type} ({what})")
                if target and stacked_share >= 0.10:
                    print(f"note [{device.type}] at {best[device.type]:,.0f} training images/s, scoring the largest "
                          f"run takes {100 * stacked_share:.0f}% of its training: stacked training has outrun "
                          "scoring, which it does not speed up")
            hours = PAPER_NETWORKS * PAPER_ITERATIONS * BATCH / best[device.type] / 3600
            print(f"projection [{device.type}] the MNIST paper grid at {best[device.type]:,.0f} images/s: "
                  f"{hours:,.1f} device-hours")
            if device.type == "cuda" or arguments.bf16_check:
                accuracies = bf16_check(dataset, mnist(Path(arguments.mnist_root), train=False), device, workdir)
                gap = max(abs(a - b) for a, b in zip(accuracies["fp32"], accuracies["bf16"]))
                print(f"bf16 [{device.type}] final test accuracy of 3 runs, fp32 {accuracies['fp32']} vs bf16 "
                      f"{accuracies['bf16']}: largest difference {gap:.4f} (guard: <= 0.01)")
                if gap > 0.01:
                    failures.append(f"bf16 accuracy differs from fp32 by {gap:.4f} on {device.type}")
            if not arguments.quick:
                failures += benchmark_engine.report(images, labels, device, workdir)
        if arguments.no_workflow:
            print("dry run and default study: skipped (--no-workflow)")
        else:
            seconds, gigabytes = dry_run_cost(workdir)
            print(f"dry run: snakemake -n of configs/paper_mnist.yaml (22,500 networks) {seconds:.1f} s, "
                  f"peak {gigabytes:.2f} GB (targets < 10 s, < 1 GB)")
            if seconds >= 10 or gigabytes >= 1:
                failures.append(f"dry run {seconds:.1f} s / {gigabytes:.2f} GB")
        if not arguments.quick and not arguments.no_workflow:
            minutes = default_study_minutes(workdir)
            print(f"default study: {minutes:.2f} min end to end on {os.cpu_count()} CPUs (target < 5 min)")
            if minutes >= 5:
                failures.append(f"default study {minutes:.2f} min >= 5")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for failure in failures:
        print(f"MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
