"""The stacked engine's training step as one function that CUDA graphs and ``torch.compile`` capture.

A step of K small networks is a few milliseconds of GPU work in a few hundred kernel launches, each
queued by the host: the host, not the GPU, sets the pace. Captured as a CUDA graph
(``torch.compile(mode="reduce-overhead")``) the step is launched as one. What makes it capturable:

- One function, ``train_step(engine, rows, lr)``, does the whole step: the batch, the forward pass,
  the gradients and the optimiser's update. It reads a static (K, batch) buffer of pool rows
  (``Stacked.rows``: each step's indices are copied into it), the learning rate as a 0-d tensor on
  the device (``Stacked.lr``, filled in place), with augmentation on each network's crop offsets and
  flips (``Stacked.offsets``, ``Stacked.flips``, copied into as the rows) and each network's loss parameters (``losses.RunLosses``:
  deferred class weights are filled in place at their switch iteration), and writes the losses into a
  static buffer: every call reads and writes the same tensors, and nothing is read back to the host.
- The gradients are computed functionally, ``torch.func.grad_and_value`` of the K losses' sum (each
  network's weights get exactly its own gradient, as ``losses.sum().backward()`` gives them), which
  ``torch._dynamo`` traces into the step's one graph; ``.backward()`` would break the graph there.
- The update is ``optim.update_``, in place, on the optimiser's own parameter and momentum tensors
  (so saves and resumes read the optimiser's state as before); the momentum exists as zeros before
  the first step (``optim.momentum_tensors``), so no step differs from another.
- bf16 autocast keeps no cache of cast weights (a cache entry made during a capture would outlive it).

``graphs`` (config ``engine.graphs``): ``never`` runs the step eagerly; ``auto`` compiles it on CUDA
with ``torch.compile(mode="reduce-overhead", fullgraph=True)`` after ``WARMUP`` eager steps (CUDA
graphs record after the lazy initialisations and cuDNN's choice of kernels) and runs eagerly on the
CPU, where the engine resumes bit for bit and compiling would cost more than it saves; ``always``
(tests, benchmarks) compiles on any device, on the CPU as inductor's C++ kernels without CUDA graphs.

Numbers: eager, the step computes what the one-at-a-time engine computes up to summation order
(``tests/test_stacked.py``, float64); compiled kernels sum in other orders again
(``tests/test_capturable_step.py``). Dropout (All-CNN) draws its masks from the compiled graph's own
random stream when compiled, not from the eager one's: a compiled run draws other masks than an eager
one, so it follows another trajectory, and a resumed run (whose first ``WARMUP`` steps are eager
again) is not bit-identical to an uninterrupted one on CUDA.
"""

from __future__ import annotations

import logging

import torch
from torch.func import grad_and_value

from .devices import autocast
from .optim import update_

log = logging.getLogger(__name__)

GRAPHS = ("auto", "never", "always")
WARMUP = 3  # eager steps before the step is compiled


def train_step(engine, rows: torch.Tensor, lr: torch.Tensor, offsets: torch.Tensor | None = None,
               flips: torch.Tensor | None = None) -> torch.Tensor:
    """One training step of ``engine``'s K networks (a ``stacked.Stacked``) on the pool rows ``rows``
    (K, batch) at learning rate ``lr`` (0-d, on the device); returns the K losses (``engine.last_losses``).
    ``offsets`` (K, batch, 2) and ``flips`` (K, batch): the batches' crops and flips, when the protocol
    augments (``augment.apply``, padding ``engine.augment["crop_padding"]``)."""
    if offsets is None:
        inputs, targets = engine.batches.gather(rows)
    else:
        inputs, targets = engine.batches.gather(rows, offsets, flips, engine.augment["crop_padding"])

    def summed(trainable: dict):
        with engine.weights(trainable), autocast(engine.device, engine.protocol.precision, cache=False):
            losses = engine.losses(inputs, targets)
        return losses.sum(), losses.detach()

    gradients, (_, losses) = grad_and_value(summed, has_aux=True)(dict(zip(engine.trainable_names, engine.trainable)))
    update_(engine.protocol, engine.trainable, [gradients[name] for name in engine.trainable_names],
            engine.velocities, lr)
    engine.last_losses.copy_(losses)
    return engine.last_losses


def compiles(graphs: str, device: torch.device) -> bool:
    """Whether ``graphs`` (``GRAPHS``) has the step compiled on ``device``."""
    if graphs not in GRAPHS:
        raise ValueError(f"engine.graphs: '{graphs}' is not one of {', '.join(GRAPHS)}")
    if graphs == "never" or (graphs == "auto" and device.type != "cuda"):
        return False
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            log.warning("engine.graphs %s: Triton is not installed, so torch.compile cannot build the step's CUDA "
                        "kernels: the stacked step runs eagerly", graphs)
            return False
    return True


class Step:
    """``train_step`` of one engine as the engine calls it: eagerly, or compiled after ``WARMUP`` eager
    steps when ``graphs`` says so (``compiles``). ``run`` is the function compiled."""

    def __init__(self, engine, graphs: str):
        self.engine, self.compile, self.steps, self.compiled = engine, compiles(graphs, engine.device), 0, None

    def run(self, rows: torch.Tensor, lr: torch.Tensor, *augmentation: torch.Tensor) -> torch.Tensor:
        return train_step(self.engine, rows, lr, *augmentation)

    def __call__(self, rows: torch.Tensor, lr: torch.Tensor, *augmentation: torch.Tensor) -> torch.Tensor:
        if self.compile and self.compiled is None and self.steps >= WARMUP:
            self.compiled = self._compiled()
        self.steps += 1
        if self.compiled is None:
            return self.run(rows, lr, *augmentation)
        if self.engine.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are not read again
        return self.compiled(rows, lr, *augmentation)

    def _compiled(self):
        engine, cuda = self.engine, self.engine.device.type == "cuda"
        # Tensors whose addresses never change: CUDA graphs read and update them where they lie
        # instead of copying them into the graph's own inputs at every replay.
        for tensor in (*engine.parameters.values(), *engine.buffers.values(), *engine.velocities, engine.rows,
                       engine.lr, engine.last_losses, engine.batches.inputs, engine.batches.targets,
                       *engine.augmentation, *engine.loss.parameters.values()):
            torch._dynamo.mark_static_address(tensor)
        log.info("compiling the step of %d stacked networks (%s) after %d eager steps", len(engine.members),
                 "CUDA graphs" if cuda else "no CUDA graphs on the CPU", self.steps)
        return torch.compile(self.run, mode="reduce-overhead" if cuda else None, fullgraph=True)
