"""The optimisers of the protocols, and which parameters they train."""

from __future__ import annotations

import torch
from torch import nn

from .protocol import Protocol


class CaffeSGD(torch.optim.Optimizer):
    """SGD with momentum in Caffe's form: ``v = m*v + lr*(g + wd*w); w -= v``.

    PyTorch's SGD keeps ``v = m*v + g`` and steps by ``lr*v``; the two differ whenever the learning
    rate changes between iterations, which Caffe's "inv" policy does at every iteration.

    One step is five ``torch._foreach_*`` operations over all parameters (a handful of kernel
    launches, however many parameters), each in place: the gradients become the update, the
    velocity is copied over, never reallocated. The velocity exists from the first step on (zeros
    before it, which adds nothing), so every step is the same sequence of operations, as a captured
    CUDA graph needs. The learning rate may be a float or a 0-d tensor on the parameters' device.
    """

    def __init__(self, params, lr: float | torch.Tensor, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            parameters = [parameter for parameter in group["params"] if parameter.grad is not None]
            if not parameters:
                continue
            updates = [parameter.grad for parameter in parameters]  # consumed: zero_grad follows every step
            for parameter in parameters:
                if "velocity" not in self.state[parameter]:
                    self.state[parameter]["velocity"] = torch.zeros_like(parameter)
            velocities = [self.state[parameter]["velocity"] for parameter in parameters]
            # The same arithmetic, in the same order, as update = (g + wd*w) * lr + m*v; v = update; w -= v.
            torch._foreach_add_(updates, parameters, alpha=group["weight_decay"])
            torch._foreach_mul_(updates, group["lr"])
            torch._foreach_add_(updates, velocities, alpha=group["momentum"])
            torch._foreach_copy_(velocities, updates)
            torch._foreach_sub_(parameters, velocities)


def make_optimizer(protocol: Protocol, parameters) -> torch.optim.Optimizer:
    if protocol.momentum_form == "caffe":
        return CaffeSGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    # PyTorch's fused step: one kernel for all parameters where the device has it (CUDA, and CPU).
    return torch.optim.SGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay,
                           fused=True)


def momentum_key(protocol: Protocol) -> str:
    """The optimiser state entry that holds a parameter's momentum."""
    return "velocity" if protocol.momentum_form == "caffe" else "momentum_buffer"


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


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
