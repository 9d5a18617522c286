"""Convolutions as matrix products, for the stacked engine's tensor cores.

Under ``vmap`` over K stacked weights (``stacked.py``) an ``nn.Conv2d`` becomes one grouped
convolution with K groups of 1 or 20 input channels each, which GPU libraries run with few or no
tensor-core GEMMs. ``GemmConv2d`` computes the same convolution as patches times a matrix:

    x (N, C, H, W) -> patches (N, Ho, Wo, C*kh*kw) -> patches @ weight.reshape(O, C*kh*kw).T + bias

Under ``vmap`` the product is one batched GEMM per layer, K matrices of (N*Ho*Wo) x (C*kh*kw) by
(C*kh*kw) x O, and the weight gradient one more with the long N*Ho*Wo side as its contraction: shapes
that cuBLAS runs on tensor cores in TF32 (``devices.resolve_device`` allows TF32 matmuls) and in
bf16 under autocast (``precision: bf16``).

How the patches are built (``im2col``):

``"strided"`` (default) takes them as a view of the (zero-padded) input in (N, H, W, C) order,
    ``Tensor.unfold`` over H and over W, and materialises them with one reshape: one copy kernel,
    whose backward (``unfold_backward``) is one kernel too. A 1x1 convolution needs no patches: its
    product runs over the channels of the input as it is (no copy at all for a channels-last input).
``"unfold"`` is ``torch.nn.functional.unfold`` (im2col) followed by ``weight @ columns``. It is there
    for comparison only: ATen's im2col and col2im go through the batch image by image (on CUDA one
    kernel launch per image, K * N of them under vmap: 4,096 per layer for 64 networks at batch 64),
    and on the CPU it is several times slower than ``"strided"``.

Memory formats: ``"strided"`` returns its output channels-last (the (N, Ho, Wo, O) product seen as
(N, O, Ho, Wo)), as ``nn.Conv2d`` does for the channels-last inputs of the one-at-a-time engine; under
vmap the first layer's (N, C, H, W) input is copied once into its patches and every later layer
then reads a channels-last input. ``"unfold"`` returns contiguous (N, O, Ho, Wo).

Numerically both differ from ``F.conv2d`` only in the order of the sums (``tests/test_stacked_conv.py``
checks outputs and gradients in float64).

Use: ``with_gemm_convolutions(model)`` returns a copy of ``model`` whose ``nn.Conv2d`` modules are
``GemmConv2d`` with the same parameters under the same names, so ``state_dict``, checkpoints and the
stacked parameter dict of ``torch.func.stack_module_state`` fit both, and ``functional_call`` with the
original model's stacked parameters works unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

IM2COL = ("strided", "unfold")


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _paddings(padding, kernel_size: tuple[int, int], stride: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """nn.Conv2d's ``padding`` (int, pair, "valid" or "same") as ((top, bottom), (left, right))."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("padding='same' needs stride 1")
        # PyTorch's convention: an odd total puts the extra row or column at the bottom or right.
        return tuple((total // 2, total - total // 2) for total in (size - 1 for size in kernel_size))
    return tuple((side, side) for side in _pair(padding))


def gemm_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride=1,
                padding=((0, 0), (0, 0)), im2col: str = "strided") -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (dilation 1, groups 1) as patches @ weight.

    ``padding`` is an int, a pair, or ((top, bottom), (left, right)). ``x`` is (N, C, H, W) or an
    unbatched (C, H, W); ``weight`` (O, C, kh, kw); ``bias`` (O,) or None.
    """
    if im2col not in IM2COL:
        raise ValueError(f"im2col '{im2col}': expected one of {IM2COL}")
    if x.ndim == 3:
        return gemm_conv2d(x.unsqueeze(0), weight, bias, stride, padding, im2col).squeeze(0)
    out_channels, in_channels, kh, kw = weight.shape
    if x.shape[1] != in_channels:
        raise ValueError(f"input has {x.shape[1]} channels, the weight expects {in_channels}")
    sh, sw = _pair(stride)
    if isinstance(padding, int) or isinstance(padding[0], int):
        padding = tuple((side, side) for side in _pair(padding))
    (top, bottom), (left, right) = padding
    matrix = weight.reshape(out_channels, in_channels * kh * kw)  # columns in (C, kh, kw) order
    if x.dtype == torch.float32 and torch.is_autocast_enabled(x.device.type):
        # Autocast runs the product in its dtype (bf16) anyway: casting before the patches are
        # copied halves the bytes of that copy and gives the same values (a cast commutes with a copy).
        x = x.to(torch.get_autocast_dtype(x.device.type))

    if im2col == "unfold":
        if top != bottom or left != right:
            x = F.pad(x, (left, right, top, bottom))
            top = bottom = left = right = 0
        n, _, height, width = x.shape
        columns = F.unfold(x, (kh, kw), padding=(top, left), stride=(sh, sw))  # (N, C*kh*kw, Ho*Wo)
        out = torch.matmul(matrix, columns)  # (N, O, Ho*Wo)
        if bias is not None:
            out = out + bias.to(out.dtype).unsqueeze(-1)  # in the product's dtype (bf16 under autocast), as F.linear adds it
        return out.reshape(n, out_channels, (height + top + bottom - kh) // sh + 1, (width + left + right - kw) // sw + 1)

    pixels = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view, contiguous for a channels-last input
    if top or bottom or left or right:
        pixels = F.pad(pixels, (0, 0, left, right, top, bottom))
    if (kh, kw) == (1, 1):
        rows = pixels[:, ::sh, ::sw]  # a 1x1 convolution is a product over channels: no patches
    else:
        patches = pixels.unfold(1, kh, sh).unfold(2, kw, sw)  # (N, Ho, Wo, C, kh, kw), a view
        rows = patches.reshape(*patches.shape[:3], in_channels * kh * kw)  # the one copy (im2col)
    return F.linear(rows, matrix, bias).permute(0, 3, 1, 2)  # (N, Ho, Wo, O) seen as (N, O, Ho, Wo)


class GemmConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` computed as a matrix product (``gemm_conv2d``): same constructor, parameters,
    names and ``state_dict``; it is an ``nn.Conv2d`` for every ``isinstance`` check (initialisers,
    fine-tuned layers). Dilation 1, groups 1 and zero padding only (what the study's models use).
    """

    def __init__(self, *arguments, im2col: str = "strided", **options):
        super().__init__(*arguments, **options)
        if im2col not in IM2COL:
            raise ValueError(f"im2col '{im2col}': expected one of {IM2COL}")
        self.im2col = im2col
        _check_supported(self)
        self._paddings = _paddings(self.padding, self.kernel_size, self.stride)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, im2col: str = "strided") -> "GemmConv2d":
        """A ``GemmConv2d`` holding ``conv``'s own weight and bias (the same Parameter objects)."""
        _check_supported(conv)
        # Built on the meta device (no memory, no initialisation drawn from the RNG), then given conv's parameters.
        gemm = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                   bias=conv.bias is not None, device="meta", im2col=im2col)
        gemm.weight = conv.weight
        if conv.bias is not None:
            gemm.bias = conv.bias
        gemm.train(conv.training)
        return gemm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_conv2d(x, self.weight, self.bias, self.stride, self._paddings, self.im2col)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, im2col={self.im2col}"


def _check_supported(conv: nn.Conv2d) -> None:
    unsupported = {name: value for name, value, fine in [
        ("groups", conv.groups, conv.groups == 1), ("dilation", conv.dilation, tuple(conv.dilation) == (1, 1)),
        ("padding_mode", conv.padding_mode, conv.padding_mode == "zeros")] if not fine}
    if unsupported:
        raise ValueError(f"GemmConv2d supports groups 1, dilation 1 and zero padding; this convolution has "
                         f"{', '.join(f'{name}={value!r}' for name, value in unsupported.items())}")


def with_gemm_convolutions(model: nn.Module, im2col: str = "strided") -> nn.Module:
    """A deep copy of ``model`` whose ``nn.Conv2d`` modules (exactly that class, not subclasses) are
    ``GemmConv2d``; ``model`` itself is left as it is.

    Parameter and buffer names are unchanged, so the copy accepts the original's state dict and, under
    ``functional_call``, the stacked parameters of ``stack_module_state`` over copies of the original.
    Works on a model on the meta device (as ``stacked.py``'s ``base``). Raises ValueError for a
    convolution it cannot compute (groups, dilation, non-zero padding modes), naming it.
    """
    converted = copy.deepcopy(model)
    # Exactly nn.Conv2d: a subclass may compute something else in its forward.
    if type(converted) is nn.Conv2d:
        return GemmConv2d.from_conv(converted, im2col)
    for name, module in list(converted.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Conv2d:
                try:
                    setattr(module, child_name, GemmConv2d.from_conv(child, im2col))
                except ValueError as error:
                    raise ValueError(f"{'.'.join(filter(None, (name, child_name)))}: {error}") from error
    return converted
