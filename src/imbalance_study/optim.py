"""The optimisers of the protocols, and which parameters they train."""

from __future__ import annotations

import torch
from torch import nn

from .protocol import Protocol


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


def momentum_key(protocol: Protocol) -> str:
    """The optimiser state entry that holds a parameter's momentum."""
    return "velocity" if protocol.momentum_form == "caffe" else "momentum_buffer"


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
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
