"""Random crop with zero padding and horizontal flip of in-memory image batches, on the device.

The standard CIFAR augmentation of long-tailed recognition (He et al. 2016; Cao et al. 2019):
each training image is padded by ``padding`` zero pixels on every side, a window of the original
size is cut at a random offset, and the result is mirrored left-right with probability 1/2.

The randomness is drawn on the host by a numpy Generator (``draw``), per example: offsets and flips,
a few bytes per batch, so the images never leave the device and the draw is the run's own. A run
derives one Generator per iteration from its seed (``iteration_rng``): a resumed run draws exactly
what an uninterrupted one would with no state to save, and K stacked networks, each with its own
seed, each get their own. ``apply`` is one gather of the padded batch on the device, with the same
shapes every step (a static buffer of offsets and flips serves a captured CUDA graph).

In training (protocol ``augment: {crop_padding, flip}``, on only for in-memory image datasets; never
in scoring) a run's draws come from ``run_seed``: its seed, dataset and profile, the key of its initial
weights, so the methods of one seed see the same crops and flips at the same iteration. The engines
draw the next steps' draws on the host beside their batch rows and upload them with the rows
(``draw_networks``); the one-at-a-time engine augments the gathered batch before its channels-last
conversion, the stacked step reads them from static buffers filled in place, as its rows.

torchvision's transforms draw one crop per call (per batch) from PyTorch's global RNG, which is why
this is written here; the tests check it example by example against torchvision's functional pad,
crop and flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Salt that keeps the augmentation's draws apart from every other stream derived from a run's seed.
_STREAM = 0x6175676D  # "augm"


@dataclass(frozen=True)
class Draws:
    """Per-example augmentation parameters: ``offsets`` (N, 2) int64, the top-left corner (row,
    column) of the window in the padded image, each in [0, 2 * padding]; ``flips`` (N,) bool."""

    offsets: np.ndarray
    flips: np.ndarray


def iteration_rng(run_seed: int, iteration: int) -> np.random.Generator:
    """The Generator of one run's draws at one iteration: a function of (seed, iteration) only."""
    return np.random.default_rng([_STREAM, int(run_seed), int(iteration)])


def draw(rng: np.random.Generator, count: int, *, padding: int, flip: bool) -> Draws:
    """Offsets and flips of ``count`` examples; padding 0 gives offsets 0 (no crop), flip False no flips."""
    if padding < 0:
        raise ValueError(f"augment: crop_padding must be 0 or more, not {padding}")
    offsets = rng.integers(0, 2 * padding + 1, size=(count, 2), dtype=np.int64)
    flips = rng.random(count) < 0.5 if flip else np.zeros(count, dtype=bool)
    return Draws(offsets, flips)


def draw_batches(run_seed: int, first_iteration: int, steps: int, batch_size: int, *, padding: int,
                 flip: bool) -> Draws:
    """The draws of ``steps`` iterations from ``first_iteration`` on, (steps, batch_size, ...): the
    same as ``steps`` single draws, however the iterations are grouped."""
    parts = [draw(iteration_rng(run_seed, first_iteration + step), batch_size, padding=padding, flip=flip)
             for step in range(steps)]
    if not parts:  # no steps (a stop at the end of training)
        return Draws(np.zeros((0, batch_size, 2), dtype=np.int64), np.zeros((0, batch_size), dtype=bool))
    return Draws(np.stack([part.offsets for part in parts]), np.stack([part.flips for part in parts]))


def run_seed(run) -> int:
    """The seed of a run's draws (a ``plan.Run``): from its seed, dataset and profile only (the key of
    its initial weights, ``Run.init_seed``), so the methods of one seed draw alike; ``iteration_rng``'s
    salt keeps the draws apart from every other stream of that seed."""
    return run.init_seed()


def draw_networks(run_seeds: list[int], first_iteration: int, steps: int, batch_size: int, *, padding: int,
                  flip: bool) -> Draws:
    """The draws of K networks (``run_seeds``) for ``steps`` iterations from ``first_iteration`` on,
    (steps, K, batch_size, ...), as the stacked engine's rows are laid out: network k's are
    ``draw_batches(run_seeds[k], ...)``."""
    parts = [draw_batches(seed, first_iteration, steps, batch_size, padding=padding, flip=flip) for seed in run_seeds]
    return Draws(np.stack([part.offsets for part in parts], axis=1), np.stack([part.flips for part in parts], axis=1))


def training_settings(protocol, batches) -> dict | None:
    """A protocol's augmentation as an engine applies it (``{"crop_padding", "flip"}``, None when off),
    refused for batches that are not in-memory images (N, C, H, W): tables have nothing to crop, and
    image folders crop and flip as they decode (``batches.ImageFolderBatches``)."""
    settings = getattr(protocol, "augment", None)
    if settings is None:
        return None
    if not getattr(batches, "in_memory", False) or batches.inputs.ndim != 4:
        raise ValueError("protocol augment: random crops and flips apply to in-memory image datasets only; this "
                         "dataset's examples are " + ("decoded from an image folder, which augments them itself"
                                                      if not getattr(batches, "in_memory", False)
                                                      else "rows of features") + ": set crop_padding 0 and flip false")
    return settings


def to_device(draws: Draws, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The draws as tensors on ``device`` (offsets int64, flips bool), ready for ``apply``."""
    return (torch.from_numpy(draws.offsets).to(device, non_blocking=True),
            torch.from_numpy(draws.flips).to(device, non_blocking=True))


def apply(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop and flip each image of a batch: ``images`` (..., C, H, W) of any dtype and memory format,
    ``offsets`` (..., 2) and ``flips`` (...) with the same leading shape (a batch (B,), or K stacked
    batches (K, B)); returns a contiguous tensor of the images' shape.

    Output pixel (i, j) of an example is padded pixel (row + i, column + j') of it, j' = j, or W - 1 - j
    when flipped (the flip mirrors the cropped window), with the padding zero; all in one gather.
    """
    *leading, channels, height, width = images.shape
    if tuple(offsets.shape) != (*leading, 2) or tuple(flips.shape) != tuple(leading):
        raise ValueError(f"augment: offsets {tuple(offsets.shape)} and flips {tuple(flips.shape)} do not match "
                         f"the batch's leading shape {tuple(leading)}")
    flat = images.reshape(-1, channels, height, width)
    padded = torch.nn.functional.pad(flat, (padding, padding, padding, padding))
    padded_width = width + 2 * padding
    offsets, flips = offsets.reshape(-1, 2), flips.reshape(-1)
    rows = offsets[:, :1] + torch.arange(height, device=images.device)  # (N, H)
    columns = torch.arange(width, device=images.device).expand(len(flat), width)
    columns = torch.where(flips[:, None], width - 1 - columns, columns) + offsets[:, 1:]  # (N, W)
    positions = (rows[:, :, None] * padded_width + columns[:, None, :]).reshape(len(flat), 1, height * width)
    gathered = padded.reshape(len(flat), channels, -1).gather(2, positions.expand(-1, channels, -1))
    return gathered.reshape(images.shape)
