"""What the stacked engine will cost a GPU, measured by proxies on any device (issue 18).

    .venv/bin/python scripts/benchmark_engine.py                 # CPU (about 5 minutes on 2 cores)
    .venv/bin/python scripts/benchmark_engine.py --devices cuda  # a GPU session: no CPU figures

Also run by scripts/benchmark.py. On real MNIST (LeNet-5, batch 64, the paper's protocol):

1. operators  operators dispatched per training step (``probes.operators_per_step``: each launches at
              least one kernel on CUDA) for K = 1, 8, 64 stacked networks, and for one network
              trained alone; the stacked count must not grow with K.
2. stop       host seconds to draw and upload the batch indices of one stop (100 steps) of 64 runs:
              drawn in one piece per run (the engine) against batch by batch (before), and their ratio.
3. files      files and bytes one stacked job of 8 runs writes and leaves, with the paper's MNIST
              checkpoints (8, log-spaced) and a resume state every 2,000 of 10,000 iterations
              (scaled down: 400 iterations, resume every 80; the counts do not depend on the length).
              Every write is a temporary file renamed into place, so these are also the fsyncs.
4. conv       forward + backward of K = 8 and 64 stacked LeNet-5s with grouped against GEMM
              convolutions (engine.conv), images/s and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS.parent / "src"), str(SCRIPTS)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from imbalance_study import probes  # noqa: E402
from imbalance_study.batches import TensorBatches  # noqa: E402
from imbalance_study.devices import resolve_device  # noqa: E402


def report(images: np.ndarray, labels: np.ndarray, device: torch.device, workdir: Path) -> list[str]:
    """Prints the four measurements on ``device``; returns the targets missed."""
    from benchmark_stacked_conv import images_per_second

    missed = []
    batches = TensorBatches(images, labels, device)
    counts = {k: probes.operators_per_step(batches, labels, k, workdir, str(device), steps=(2, 6)) for k in (1, 8, 64)}
    alone = probes.operators_per_step(batches, labels, 1, workdir, str(device), stack=False, steps=(2, 6))
    print(f"operators [{device.type}] per step, stacked K=1/8/64: "
          f"{' / '.join(f'{counts[k]:.0f}' for k in (1, 8, 64))}; one network alone {alone:.0f} (target: flat in K)")
    if counts[64] > counts[8] * 1.05:
        missed.append(f"operators per stacked step grow with K: {counts}")
    stop = probes.host_seconds_per_stop(len(labels), 64, 100, 64, device)
    print(f"stop [{device.type}] host seconds to draw and upload 100 steps of 64 runs: {stop['vectorised']:.4f} s "
          f"drawn in one piece per run, {stop['batch by batch']:.4f} s batch by batch "
          f"({stop['batch by batch'] / stop['vectorised']:.0f}x)")
    written = probes.files_written(images, labels, 8, 400, 8, 80, workdir, str(device))
    print(f"files [{device.type}] one stacked job of 8 runs (8 checkpoints, resume state every 80 of 400): "
          f"{written['files written']} files and {written['bytes written'] / 1e6:.1f} MB written, "
          f"{written['files left']} files and {written['bytes left'] / 1e6:.1f} MB left")
    cpu = device.type == "cpu"
    for k in (8, 64):
        rates = images_per_second(["grouped", "gemm"], k, device, rounds=3 if cpu else 5, block=1 if cpu else 10,
                                  warmup=1 if cpu else 10)
        print(f"conv [{device.type}] K={k:>2} forward+backward: grouped {rates['grouped']:,.0f} images/s, "
              f"gemm {rates['gemm']:,.0f} images/s ({rates['gemm'] / rates['grouped']:.2f}x)")
    return missed


def main() -> int:
    from benchmark import mnist

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=["cpu"], choices=["cpu", "cuda"])
    parser.add_argument("--mnist-root", default=str(SCRIPTS.parent / "data" / "torchvision"))
    arguments = parser.parse_args()
    dataset = mnist(Path(arguments.mnist_root))
    images, labels = dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)
    missed = []
    with tempfile.TemporaryDirectory(prefix="benchmark-engine-") as workdir:
        for name in arguments.devices:
            missed += report(images, labels, resolve_device(name), Path(workdir))
    for miss in missed:
        print(f"MISSED: {miss}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
