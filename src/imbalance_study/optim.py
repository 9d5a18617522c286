"""The optimisers of the protocols, and which parameters they train."""

from __future__ import annotations

import torch
from torch import nn

from .protocol import Protocol


class CaffeSGD(torch.optim.Optimizer):
    """SGD with momentum in Caffe's form: ``v = m*v + lr*(g + wd*w); w -= v``.

    PyTorch's SGD keeps ``v = m*v + g`` and steps by ``lr*v``; the two differ whenever the learning
    rate changes between iterations, which Caffe's "inv" policy does at every iteration.

    One step is ``caffe_update_``: five ``torch._foreach_*`` operations over all parameters (a handful
    of kernel launches, however many parameters), each in place. The velocity exists from the first
    step on (zeros before it, which adds nothing), so every step is the same sequence of operations,
    as a captured CUDA graph needs. The learning rate may be a float or a 0-d tensor on the
    parameters' device.
    """

    def __init__(self, params, lr: float | torch.Tensor, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            parameters = [parameter for parameter in group["params"] if parameter.grad is not None]
            if not parameters:
                continue
            for parameter in parameters:
                if "velocity" not in self.state[parameter]:
                    self.state[parameter]["velocity"] = torch.zeros_like(parameter)
            # The gradients are consumed (they become the update): zero_grad follows every step.
            caffe_update_(parameters, [parameter.grad for parameter in parameters],
                          [self.state[parameter]["velocity"] for parameter in parameters],
                          group["lr"], group["momentum"], group["weight_decay"])


def caffe_update_(parameters: list, gradients: list, velocities: list, lr, momentum: float,
                  weight_decay: float) -> None:
    """Caffe's update, in place: ``update = (g + wd*w) * lr + m*v; v = update; w -= v``, in this
    order (``CaffeSGD`` and the stacked engine's step both take it from here). ``gradients`` are
    consumed: they become the update. ``lr``: a float or a 0-d tensor on the parameters' device."""
    torch._foreach_add_(gradients, parameters, alpha=weight_decay)
    torch._foreach_mul_(gradients, lr)
    torch._foreach_add_(gradients, velocities, alpha=momentum)
    torch._foreach_copy_(velocities, gradients)
    torch._foreach_sub_(parameters, velocities)


def pytorch_update_(parameters: list, gradients: list, buffers: list, lr, momentum: float,
                    weight_decay: float) -> None:
    """PyTorch's SGD update (no dampening, no Nesterov), in place: ``d = g + wd*w; b = m*b + d;
    w -= lr*b``; at momentum 0 PyTorch keeps no ``b`` (``buffers`` empty) and ``w -= lr*d``. What
    ``torch.optim.SGD`` computes (the one-at-a-time engine uses it), written with a tensor ``lr``
    that ``torch.optim.SGD``'s foreach form would read back to the host. ``gradients`` are consumed."""
    torch._foreach_add_(gradients, parameters, alpha=weight_decay)
    if buffers:
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, gradients)
        torch._foreach_copy_(gradients, buffers)
    torch._foreach_mul_(gradients, lr)
    torch._foreach_sub_(parameters, gradients)


def update_(protocol: Protocol, parameters: list, gradients: list, velocities: list, lr) -> None:
    """The protocol's SGD update of ``parameters`` in place, by their ``gradients`` (consumed) and
    their momentum tensors (``momentum_tensors``)."""
    update = caffe_update_ if protocol.momentum_form == "caffe" else pytorch_update_
    update(parameters, gradients, velocities, lr, protocol.momentum, protocol.weight_decay)


def make_optimizer(protocol: Protocol, parameters) -> torch.optim.Optimizer:
    if protocol.momentum_form == "caffe":
        return CaffeSGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    # PyTorch's fused step: one kernel for all parameters where the device has it (CUDA, and CPU).
    return torch.optim.SGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay,
                           fused=True)


def momentum_key(protocol: Protocol) -> str:
    """The optimiser state entry that holds a parameter's momentum."""
    return "velocity" if protocol.momentum_form == "caffe" else "momentum_buffer"


def momentum_tensors(optimizer: torch.optim.Optimizer, protocol: Protocol) -> list[torch.Tensor]:
    """The momentum tensors the optimiser keeps for its parameters (in their order), created as zeros
    where it keeps none yet (a fresh start): a zero velocity adds nothing to the first update (Caffe's
    form starts from zeros; PyTorch's ``b = m*0 + d`` is its first ``b = d``), so every step is the
    same operations and a step captured after the first one stays valid. Empty at momentum 0 in
    PyTorch's form, which keeps none."""
    if protocol.momentum_form == "pytorch" and protocol.momentum == 0:
        return []
    key = momentum_key(protocol)
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    for parameter in parameters:
        if key not in optimizer.state[parameter]:
            optimizer.state[parameter][key] = torch.zeros_like(parameter)
    return [optimizer.state[parameter][key] for parameter in parameters]


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
