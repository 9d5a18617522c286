"""Where training and scoring run, and the settings that come with the device."""

from __future__ import annotations

import torch


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


def autocast(device: torch.device, precision: str, cache: bool = True):
    """bfloat16 autocast for ``precision`` bf16 (matmuls and convolutions in bf16, fp32 weights,
    losses and updates); a no-op context for fp32. ``cache=False`` casts the weights at every use
    instead of keeping their bf16 copies for the context's lifetime: what a step captured by CUDA
    graphs or ``torch.compile`` needs (the same numbers; each weight is used once per forward pass)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache)


def rng_states(device: torch.device) -> dict:
    """PyTorch's random generators a run draws from (dropout, initialisation): the CPU's, and the
    GPU's when it trains on one, so that a resumed run draws what an uninterrupted one would."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
