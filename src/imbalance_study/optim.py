"""The optimisers of the protocols, their state, and which parameters they train.

SGD (in Caffe's or PyTorch's form), Adam and AdamW. The one-at-a-time engine steps a
``torch.optim`` optimiser (``make_optimizer``); the stacked engine keeps one too, for its state
only, and applies ``update_`` to that state's tensors in place: every update here is elementwise
(Adam's step count is shared by all parameters), so K stacked networks are each updated exactly as
alone. ``state_tensors`` creates the state before the first step, so that every step is the same
operations, as a captured CUDA graph needs; ``stacked_state`` and ``restore_stacked_state`` move
the state of stacked parameters to and from per-network resume files.
"""

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


def adam_update_(parameters: list, gradients: list, state: list, lr, betas: tuple[float, float], eps: float,
                 weight_decay: float, decoupled: bool) -> None:
    """Adam's update (AdamW's with ``decoupled``), in place, as ``torch.optim.Adam``/``AdamW``
    compute it (no amsgrad): ``t += 1``; L2 ``g += wd*w``, or decoupled ``w *= 1 - lr*wd``; ``m =
    lerp(m, g, 1 - b1)``; ``v = b2*v + (1 - b2)*g*g``; ``w -= lr / (1 - b1^t) * m / (sqrt(v) /
    sqrt(1 - b2^t) + eps)``.

    ``state``: the first moments, then the second moments (one per parameter, in their order), then
    the step count ``t``, a 0-d tensor all parameters share (``state_tensors``): the bias corrections
    are computed from it on the device. With ``lr`` a 0-d tensor too nothing is read back to the
    host, as a captured CUDA graph needs. ``gradients`` are consumed.
    """
    count = len(parameters)
    exp_avgs, exp_avg_sqs, step = state[:count], state[count:2 * count], state[2 * count]
    beta1, beta2 = betas
    step.add_(1)
    if weight_decay and decoupled:
        torch._foreach_mul_(parameters, 1 - lr * weight_decay)
    elif weight_decay:
        torch._foreach_add_(gradients, parameters, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, gradients, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, gradients, gradients, value=1 - beta2)
    denominators = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denominators, (1 - beta2 ** step).sqrt())
    torch._foreach_add_(denominators, eps)
    torch._foreach_copy_(gradients, exp_avgs)
    torch._foreach_div_(gradients, denominators)
    torch._foreach_mul_(gradients, lr / (1 - beta1 ** step))
    torch._foreach_sub_(parameters, gradients)


def update_(protocol: Protocol, parameters: list, gradients: list, state: list, lr) -> None:
    """The protocol's update of ``parameters`` in place, by their ``gradients`` (consumed) and the
    optimiser's state tensors (``state_tensors``). ``lr``: a float or a 0-d tensor."""
    if protocol.optimizer == "sgd":
        update = caffe_update_ if protocol.momentum_form == "caffe" else pytorch_update_
        update(parameters, gradients, state, lr, protocol.momentum, protocol.weight_decay)
    else:
        adam_update_(parameters, gradients, state, lr, protocol.betas, protocol.eps, protocol.weight_decay,
                     decoupled=protocol.optimizer == "adamw")


def make_optimizer(protocol: Protocol, parameters) -> torch.optim.Optimizer:
    if protocol.optimizer != "sgd":
        # PyTorch's fused step (one kernel for all parameters, CUDA and CPU) computes what its
        # single-tensor form does (tests/test_optim.py, against the formula in float64).
        adam = torch.optim.AdamW if protocol.optimizer == "adamw" else torch.optim.Adam
        return adam(parameters, lr=protocol.lr, betas=protocol.betas, eps=protocol.eps,
                    weight_decay=protocol.weight_decay, fused=True)
    if protocol.momentum_form == "caffe":
        return CaffeSGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    # PyTorch's fused step: one kernel for all parameters where the device has it (CUDA, and CPU).
    return torch.optim.SGD(parameters, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay,
                           fused=True)


def momentum_key(protocol: Protocol) -> str:
    """The optimiser state entry that holds a parameter's SGD momentum."""
    return "velocity" if protocol.momentum_form == "caffe" else "momentum_buffer"


ADAM_KEYS = ("exp_avg", "exp_avg_sq")  # per parameter; "step" is the count all parameters share here


def state_tensors(optimizer: torch.optim.Optimizer, protocol: Protocol) -> list[torch.Tensor]:
    """The tensors ``update_`` reads and writes, from the optimiser's state (so that what saves
    write is what the update changed), created where the optimiser keeps none yet (a fresh start).

    SGD: one momentum per parameter, zeros at first: a zero velocity adds nothing to the first
    update (Caffe's form starts from zeros; PyTorch's ``b = m*0 + d`` is its first ``b = d``), so
    every step is the same operations and a step captured after the first one stays valid; none at
    momentum 0 in PyTorch's form, which keeps none. Adam: the first moments, then the second moments
    (zeros at first, as PyTorch starts them), then one step count (0-d, in the parameters' dtype, on
    their device), the same tensor in every parameter's state.
    """
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    if protocol.optimizer == "sgd":
        if protocol.momentum_form == "pytorch" and protocol.momentum == 0:
            return []
        keys = (momentum_key(protocol),)
    else:
        keys = ADAM_KEYS
        counts = [optimizer.state[parameter]["step"] for parameter in parameters if "step" in optimizer.state[parameter]]
        step = counts[0] if counts else torch.zeros((), dtype=parameters[0].dtype, device=parameters[0].device)
        for parameter in parameters:
            optimizer.state[parameter]["step"] = step
    for parameter in parameters:
        for key in keys:
            if key not in optimizer.state[parameter]:
                optimizer.state[parameter][key] = torch.zeros_like(parameter)
    tensors = [optimizer.state[parameter][key] for key in keys for parameter in parameters]
    return tensors if protocol.optimizer == "sgd" else [*tensors, step]


def stacked_state(optimizer: torch.optim.Optimizer, named: dict[str, torch.Tensor]) -> dict[str, dict]:
    """The optimiser's state of stacked parameters ``named`` (name -> stacked tensor), on the host:
    {name: {key: tensor}}, each tensor crossing to the host once. ``network_state`` takes one
    network's part."""
    return {name: {key: value.detach().cpu() for key, value in optimizer.state[parameter].items()}
            for name, parameter in named.items() if optimizer.state[parameter]}


def network_state(state: dict[str, dict], position: int) -> dict[str, dict]:
    """Network ``position``'s part of ``stacked_state``: its slice of each stacked tensor, cloned so
    that its file holds only its own; a 0-d tensor (Adam's step count) is shared and kept whole."""
    return {name: {key: (value if value.dim() == 0 else value[position]).clone() for key, value in entries.items()}
            for name, entries in state.items()}


def saved_network_state(resume: dict, protocol: Protocol) -> dict[str, dict]:
    """A stacked run's optimiser state as its resume file holds it, {name: {key: tensor}}: written
    under ``optimizer_state``, or, by runs saved before Adam existed, as SGD's momenta under
    ``velocity`` ({name: tensor})."""
    if "optimizer_state" in resume:
        return resume["optimizer_state"]
    return {name: {momentum_key(protocol): tensor} for name, tensor in resume.get("velocity", {}).items()}


def restore_stacked_state(optimizer: torch.optim.Optimizer, named: dict[str, torch.Tensor],
                          saved: list[dict[str, dict]]) -> None:
    """Put K networks' saved states (``network_state``, in the order of the stack) into the optimiser
    of their stacked parameters ``named``. Nothing when any network has none (a fresh start, or
    PyTorch's SGD at momentum 0, which keeps none). Adam's shared step count is taken once: the
    networks of a group stand at one iteration, so at one count."""
    if not all(saved):
        return
    for name, parameter in named.items():
        if not all(name in state for state in saved):
            continue
        for key in saved[0][name]:
            values = [state[name][key] for state in saved]
            if values[0].dim() == 0:
                if any(not torch.equal(value, values[0]) for value in values):
                    raise ValueError(f"the stacked runs' optimiser states disagree on {key} ({name}): "
                                     f"{[value.item() for value in values]}; they cannot resume as one group")
                optimizer.state[parameter][key] = values[0].to(parameter.device)
            else:
                optimizer.state[parameter][key] = torch.stack(values).to(parameter.device)


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
