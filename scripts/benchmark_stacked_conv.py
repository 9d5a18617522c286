"""Stacked LeNet-5s with grouped against GEMM convolutions: forward + backward, images/s.

    .venv/bin/python scripts/benchmark_stacked_conv.py                  # CPU, K = 8 and 64
    .venv/bin/python scripts/benchmark_stacked_conv.py --device cuda    # TF32 matmuls, as training uses
    .venv/bin/python scripts/benchmark_stacked_conv.py --device cuda --precision bf16 --unfold

K LeNet-5s (MNIST, 28x28, batch 64 each) are stacked as ``stacked.py`` stacks them, and one step is
its step without the optimiser: ``vmap(functional_call(base, ...), randomness="different")`` of the
cross-entropy losses, summed, and their gradients w.r.t. every stacked parameter. ``base`` has
``nn.Conv2d`` (under vmap a grouped convolution, K groups) or ``GemmConv2d`` (``stacked_conv``: patches
times weights, a batched GEMM). ``--unfold`` also times ``GemmConv2d`` with im2col by
``F.unfold``. Warm-up steps first; then the variants take turns, a block of steps each, for a few
rounds, and each gets the median of its rounds (a shared CPU's changing load hits them alike); on
CUDA ``torch.cuda.synchronize()`` before each clock read. images/s counts the images of all K networks.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.func import functional_call, stack_module_state, vmap  # noqa: E402

from imbalance_study import models  # noqa: E402
from imbalance_study.devices import autocast, resolve_device  # noqa: E402
from imbalance_study.stacked_conv import with_gemm_convolutions  # noqa: E402

# (label, im2col): None is nn.Conv2d (grouped under vmap)
VARIANTS = {"grouped": None, "gemm": "strided", "gemm_unfold": "unfold"}


def stacked_step(variant: str, networks: int, device: torch.device, batch: int = 64, precision: str = "fp32"):
    """One forward + backward step of ``networks`` stacked LeNet-5s with ``variant``'s convolutions (a closure)."""
    stack = []
    for seed in range(networks):
        torch.manual_seed(seed)
        stack.append(models.build("lenet5", 10, (28, 28)).to(device))
    parameters, buffers = stack_module_state(stack)
    base = copy.deepcopy(stack[0]).to("meta")
    if VARIANTS[variant] is not None:
        base = with_gemm_convolutions(base, VARIANTS[variant])
    del stack

    def one_loss(params, buffs, inputs, targets):
        return nn.functional.cross_entropy(functional_call(base, (params, buffs), (inputs,)), targets)

    losses_of = vmap(one_loss, randomness="different")
    generator = torch.Generator(device).manual_seed(0)
    inputs = torch.rand(networks, batch, 1, 28, 28, device=device, generator=generator)
    targets = torch.randint(0, 10, (networks, batch), device=device, generator=generator)
    trainable = list(parameters.values())

    def step():
        with autocast(device, precision):
            loss = losses_of(parameters, buffers, inputs, targets).sum()
        return torch.autograd.grad(loss, trainable)

    return step


def images_per_second(variants: list[str], networks: int, device: torch.device, batch: int = 64, rounds: int = 3,
                      block: int = 1, warmup: int = 1, precision: str = "fp32") -> dict[str, float]:
    """Images/s (over all ``networks``) of each variant: the median over ``rounds`` of ``block`` steps.

    The variants take turns, block by block, so that a machine whose load changes (other jobs on a
    shared CPU) slows them alike; the median drops the rounds a burst of load hit.
    """
    steps = {variant: stacked_step(variant, networks, device, batch, precision) for variant in variants}

    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant, step in steps.items():
            start = clock()
            for _ in range(block):
                step()
            seconds[variant].append(clock() - start)
    return {variant: networks * batch * block / statistics.median(times) for variant, times in seconds.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--networks", type=int, nargs="+", default=[8, 64], help="K, networks stacked (8 64)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, help="timed rounds, each variant in turn (default 3 on the CPU, 5 on CUDA)")
    parser.add_argument("--block", type=int, help="steps per variant per round (default 1 on the CPU, 10 on CUDA)")
    parser.add_argument("--warmup", type=int, help="untimed steps of each variant first (default 1 on the CPU, 10 on CUDA)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: under bfloat16 autocast, as protocol precision bf16")
    parser.add_argument("--unfold", action="store_true", help="also time GEMM with F.unfold's im2col (slow)")
    parser.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    arguments = parser.parse_args(argv)
    device = resolve_device(arguments.device)  # on CUDA: TF32 matmuls and convolutions, cuDNN benchmark
    cpu = device.type == "cpu"
    rounds = arguments.rounds or (3 if cpu else 5)
    block = arguments.block or (1 if cpu else 10)
    warmup = arguments.warmup if arguments.warmup is not None else (1 if cpu else 10)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    variants = ["grouped", "gemm"] + (["gemm_unfold"] if arguments.unfold else [])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"stacked LeNet-5, batch {arguments.batch} per network, 28x28, forward+backward, {arguments.precision}, "
          f"{name}, torch {torch.__version__}; {warmup} warm-up steps, then the median of {rounds} rounds of "
          f"{block} steps per variant, variants in turn")
    for networks in arguments.networks:
        rates = images_per_second(variants, networks, device, arguments.batch, rounds, block, warmup,
                                  arguments.precision)
        figures = "  ".join(f"{variant} {rate:>10,.0f} images/s" for variant, rate in rates.items())
        ratios = "  ".join(f"{variant}/grouped {rates[variant] / rates['grouped']:.2f}x" for variant in variants[1:])
        print(f"K = {networks:3d}  {figures}  {ratios}", flush=True)


if __name__ == "__main__":
    main()
