"""The training losses of long-tailed recognition, as one function both engines call.

Every loss here is one formula with per-network parameters (``general``): on logits ``x`` (N, C)
and targets ``y``,

    z = scale * (x - margin_y * onehot(y)) + offset          (offset, margin: (C,); scale: 0-d)
    l_i = -(1 - p_i)^gamma * log p_i,   p_i = softmax(z_i)[y_i]
    loss = sum_i w_{y_i} l_i / sum_i w_{y_i}                  (weights w: (C,); gamma: 0-d)

the weighted mean being PyTorch's convention for ``cross_entropy(weight=...)`` (which LDAM-DRW's
reference code uses). Each named loss is a choice of those parameters (``parameters_of``):

- ``cross_entropy``: neutral parameters (w = 1, offset = margin = gamma = 0, scale = 1);
- ``focal`` (Lin et al. 2017): gamma;
- ``ldam`` (Cao et al. 2019): margins ``C / n_c^(1/4)`` scaled so that the largest is ``max_margin``,
  and ``scale`` (their s);
- ``logit_adjusted`` (Menon et al. 2021): offset ``tau * log prior``;
- ``balanced_softmax`` (Ren et al. 2020): offset ``log prior`` (= log n_c up to a constant, which
  softmax ignores);

each with class weights ``none``, ``inverse`` (frequency) or ``effective_number`` (Cui et al. 2019,
``(1 - beta) / (1 - beta^n_c)``), both normalised to sum to C, switched on at iteration
``round(weights_from * iterations)`` (LDAM-DRW's deferred re-weighting; 0: from the start).

Because the parameters are tensors, ``torch.func.vmap`` maps ``general`` over K networks whose
losses differ, so runs of different losses train in one stacked bundle (``RunLosses``). A bundle
computes only the parts of the formula its losses need (``terms_of``: a small network's step pays
for every operator), a network trained alone passes its exponent and scale as numbers (``general``:
fewer operators again), and plain cross-entropy alone keeps ``nn.functional.cross_entropy`` itself
(``RunLosses.plain``), so runs trained before these losses existed stay bit-identical. The class
counts are those of the imbalanced set before any sampling.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NAMES = ("cross_entropy", "focal", "ldam", "logit_adjusted", "balanced_softmax")
WEIGHTS = ("none", "inverse", "effective_number")


def is_plain(loss: dict) -> bool:
    """Plain, unweighted cross-entropy: what every run trained before the other losses existed."""
    return loss["name"] == "cross_entropy" and loss["weights"] == "none"


def _checked_counts(counts, what: str) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError(f"{what}: needs the class counts of the imbalanced set, one per class; got {counts.shape}")
    if (counts <= 0).any():
        empty = ", ".join(str(c) for c in np.flatnonzero(counts <= 0))
        raise ValueError(f"{what}: class {empty} has no example in the imbalanced set, so its weight, prior or "
                         f"margin is undefined")
    return counts


def class_weights(counts, kind: str, beta: float | None = None) -> np.ndarray:
    """Per-class loss weights, normalised to sum to the number of classes: ``none`` (ones),
    ``inverse`` (1 / n_c) or ``effective_number`` ((1 - beta) / (1 - beta^n_c), Cui et al.)."""
    if kind == "none":
        return np.ones(len(counts))
    counts = _checked_counts(counts, f"loss weights {kind}")
    if kind == "inverse":
        raw = 1.0 / counts
    elif kind == "effective_number":
        if beta is None or not 0 <= beta < 1:
            raise ValueError(f"loss.beta: {beta} is outside [0, 1)")
        # 1 - beta^n as -expm1(n log beta): exact for beta near 1, where 1 - beta**n loses digits.
        with np.errstate(divide="ignore"):
            raw = (1.0 - beta) / -np.expm1(counts * np.log(beta))
    else:
        raise ValueError(f"loss.weights: '{kind}' is not one of {', '.join(WEIGHTS)}")
    return raw * len(counts) / raw.sum()


def ldam_margins(counts, max_margin: float) -> np.ndarray:
    """LDAM's per-class margins ``C / n_c^(1/4)``, with C chosen so that the largest is ``max_margin``."""
    raw = _checked_counts(counts, "loss ldam") ** -0.25
    return raw * (max_margin / raw.max())


def log_prior(counts) -> np.ndarray:
    counts = _checked_counts(counts, "loss logit_adjusted / balanced_softmax")
    return np.log(counts / counts.sum())


def weights_switch(loss: dict, iterations: int) -> int:
    """The first iteration (counted from 0) whose step uses the class weights (0 without weights)."""
    return 0 if loss["weights"] == "none" else int(round(loss["weights_from"] * iterations))


def parameters_of(loss: dict, counts, n_classes: int) -> dict[str, np.ndarray]:
    """The parameters of ``general`` for a loss setting (all keys present, as the schema fills them):
    ``weights`` are the class weights once switched on (``weights_switch``)."""
    name = loss["name"]
    if name not in NAMES:
        raise ValueError(f"loss.name: '{name}' is not one of {', '.join(NAMES)}")
    if counts is not None and len(counts) != n_classes:
        raise ValueError(f"loss {name}: {len(counts)} class counts for {n_classes} classes")
    if counts is None and not is_plain(loss):
        raise ValueError(f"loss {name} (weights {loss['weights']}) needs the class counts of the run's imbalanced set")
    zeros = np.zeros(n_classes)
    offsets = {"logit_adjusted": lambda: loss["tau"] * log_prior(counts),
               "balanced_softmax": lambda: log_prior(counts)}.get(name, lambda: zeros)()
    return {"weights": class_weights(counts, loss["weights"], loss["beta"]) if loss["weights"] != "none"
            else np.ones(n_classes),
            "offsets": offsets,
            "margins": ldam_margins(counts, loss["max_margin"]) if name == "ldam" else zeros,
            "gamma": np.array(float(loss["gamma"]) if name == "focal" else 0.0),
            "scale": np.array(float(loss["scale"]) if name == "ldam" else 1.0)}


TERMS = frozenset({"offsets", "margins", "focal", "weights"})  # the parts of ``general`` a loss may need


def terms_of(settings: list[dict]) -> frozenset:
    """The parts of ``general`` that the losses ``settings`` need: a part that none needs would
    leave the loss unchanged (zero offsets, margins and gamma, unit scale and weights), so it is
    left out, and with it its operators (a small network's step pays for each one). A loss whose own
    setting makes its part neutral needs it no more than cross-entropy does: focal at gamma 0,
    logit-adjusted at tau 0, LDAM with max_margin 0 and scale 1 (each is cross-entropy, the same sums)."""
    def needs(loss: dict) -> set:
        name = loss["name"]
        if name == "balanced_softmax" or name == "logit_adjusted" and loss["tau"] != 0:
            return {"offsets"}
        if name == "ldam" and (loss["max_margin"] != 0 or loss["scale"] != 1):
            return {"margins"}
        return {"focal"} if name == "focal" and loss["gamma"] != 0 else set()

    return frozenset(set().union(*(needs(loss) for loss in settings))) \
        | ({"weights"} if any(loss["weights"] != "none" for loss in settings) else set())


def general(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor,
            margins: torch.Tensor, gamma: torch.Tensor | float, scale: torch.Tensor | float,
            terms: frozenset = TERMS) -> torch.Tensor:
    """The loss of one network's batch (module docstring), written with nothing that ``vmap`` cannot
    map (no one_hot, no data-dependent shapes) and nothing read back to the host. ``terms``: the
    parts computed (``terms_of``; all of them by default).

    ``gamma`` and ``scale`` are tensors (0-d; batched under ``vmap``) or, for one network alone,
    Python floats (``RunLosses.one``): known on the host, a unit scale multiplies nothing,
    ``(1 - p)^gamma`` is ``pow`` with a number (whose gradient is three operators where a tensor
    exponent's is seven), and the guard at ``p = 1`` and the sign of ``1 - p`` are left out where
    they cannot change a value or a gradient (below). The same numbers either way, up to the rounding
    of ``pow``'s kernels (tests/test_losses.py); a small network's step pays for every operator."""
    # At least float32 (bf16 autocast gives bf16 logits; float64 tests keep float64), without an
    # operator where the logits have it already.
    z = logits if logits.dtype in (torch.float32, torch.float64) else \
        logits.to(torch.promote_types(logits.dtype, torch.float32))
    if "margins" in terms:
        # scale * (x - m_y onehot) + offset, the shift computed without the logits (no gradient to
        # carry): as (offset - scale m_y onehot) + scale * x, the one sum either way it is written.
        onehot = targets[:, None] == torch.arange(z.shape[1], device=z.device)
        if isinstance(scale, float):
            shift = torch.where(onehot, margins if scale == 1.0 else scale * margins, 0.0)
            z = z if scale == 1.0 else z * scale
            z = z + (offsets - shift) if "offsets" in terms else z - shift
        else:
            z = torch.addcmul(offsets - torch.where(onehot, scale * margins, 0.0), z, scale)
    elif "offsets" in terms:
        z = z + offsets
    if "focal" not in terms:  # PyTorch's weighted mean is the loss's (one operator)
        return nn.functional.cross_entropy(z, targets, weight=weights if "weights" in terms else None)
    losses = nn.functional.cross_entropy(z, targets, reduction="none")  # -log p
    # 1 - p as -expm1(log p) keeps its digits when p is near 1. (1 - p)^gamma at p = 1: 0^gamma has
    # gradient gamma * 0^(gamma - 1), infinite for gamma in (0, 1) (NaN once multiplied by -log p = 0;
    # PyTorch's gradient of pow is 0 at gamma = 0). Clamped at the smallest normal number the factor's
    # gradient is finite and the factor itself unchanged: -log p is the log of a sum of exponentials,
    # 0 or at least about the rounding unit (2^-24 in float32), so 1 - p is 0 or far above that
    # number, and where it is 0 the term is -log p = 0 times a finite number anyway. A gamma known on
    # the host needs the clamp only in (0, 1), and an even one no sign either (the default gamma 2:
    # one operator less each way).
    host = isinstance(gamma, float)
    if host and gamma % 2 == 0:  # an even power: (1 - p)^gamma = (p - 1)^gamma, the same numbers
        base = torch.expm1(-losses)
    else:
        base = -torch.expm1(-losses)
        if not host or 0 < gamma < 1:
            base = base.clamp_min(torch.finfo(losses.dtype).tiny)
    factor = torch.pow(base, gamma)  # (not ``**``: Tensor.__pow__ is a Python wrapper)
    if "weights" in terms:
        weight = weights[targets]
        return torch.dot(weight, factor * losses) / weight.sum()
    return torch.dot(factor, losses) / losses.shape[0]  # the mean, without the products' tensor


class RunLosses:
    """The losses of K runs as an engine computes them: each run's parameters of ``general`` as
    tensors (K, ...) on the device, at fixed addresses (a captured step reads them in place).

    The class weights of a run with deferred re-weighting are ones until its switch iteration
    (``weights_switch``); ``before_step`` fills them in place then, and ``start_at`` sets them for a
    run resumed at any iteration, so a resumed run computes the weights an uninterrupted one does
    (they follow from the iteration alone: nothing is kept in the resume state).
    """

    def __init__(self, settings: list[dict], class_counts: list, n_classes: int, iterations: int,
                 device: torch.device, dtype: torch.dtype):
        self.plain = all(is_plain(loss) for loss in settings)
        self.terms = terms_of(settings)
        self.parameters: dict[str, torch.Tensor] = {}
        if self.plain:
            return
        per_run = [parameters_of(loss, counts, n_classes) for loss, counts in zip(settings, class_counts)]
        self.parameters = {name: torch.tensor(np.stack([run[name] for run in per_run]), dtype=dtype, device=device)
                           for name in per_run[0]}
        self.weighted = self.parameters["weights"].clone()
        self.switches = [weights_switch(loss, iterations) for loss in settings]
        # The first network as ``one`` passes it at every step: views of its tensors, taken once
        # (in-place switches reach them), and its exponent and scale as numbers (``general``),
        # rounded to the dtype the tensors hold.
        self.alone = {**self.of(0), **{name: torch.tensor(per_run[0][name], dtype=dtype).item()
                                       for name in ("gamma", "scale")}}

    def start_at(self, iteration: int) -> None:
        """The weights of a run that starts (or resumes) at ``iteration``."""
        if self.plain:
            return
        for network, switch in enumerate(self.switches):
            if iteration >= switch:
                self.parameters["weights"][network].copy_(self.weighted[network])
            else:
                self.parameters["weights"][network].fill_(1.0)

    def before_step(self, iteration: int) -> None:
        """Switch on the class weights of the runs whose switch iteration this is (in place)."""
        if self.plain:
            return
        for network, switch in enumerate(self.switches):
            if switch == iteration:
                self.parameters["weights"][network].copy_(self.weighted[network])

    def of(self, network: int) -> dict[str, torch.Tensor]:
        """One run's parameters (views of the stacked tensors: in-place switches reach them)."""
        return {name: tensor[network] for name, tensor in self.parameters.items()}

    def one(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of the one run of a one-at-a-time engine (K = 1)."""
        if self.plain:
            return nn.functional.cross_entropy(logits, targets)
        return general(logits, targets, **self.alone, terms=self.terms)
