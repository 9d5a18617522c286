"""Networks of the study.

Every model exposes ``features(x)`` (the penultimate representation, for learning-dynamics scores)
and ``output_layers`` (the layers two-phase training fine-tunes).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def caffe_xavier_(module: nn.Module) -> None:
    """Caffe's "xavier" filler: uniform in +-sqrt(3 / fan_in), biases zero."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            bound = math.sqrt(3.0 / fan_in)
            nn.init.uniform_(layer.weight, -bound, bound)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class LeNet5(nn.Module):
    """LeNet-5 as in Caffe's MNIST example (the paper's Table 2).

    conv 20@5x5 -> max-pool 2 -> conv 50@5x5 -> max-pool 2 -> fc 500 -> ReLU -> fc K.
    Caffe's version has no non-linearity after the convolutions; neither does this one.
    """

    output_layers = ("fc2",)

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.fc2 = nn.Linear(500, n_classes)
        caffe_xavier_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv1(x), 2)
        x = nn.functional.max_pool2d(self.conv2(x), 2)
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


class DigitsCNN(nn.Module):
    """A small LeNet-style network for scikit-learn's 8x8 digits.

    conv 16@3x3 (same) -> max-pool 2 -> conv 32@3x3 (same) -> max-pool 2 -> fc 128 -> ReLU -> fc K.
    """

    output_layers = ("fc2",)

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        side = image_size // 4
        self.fc1 = nn.Linear(32 * side * side, 128)
        self.fc2 = nn.Linear(128, n_classes)
        caffe_xavier_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


MODELS = {"lenet5": LeNet5, "digits_cnn": DigitsCNN}


def build(name: str, n_classes: int, image_shape: tuple[int, ...]) -> nn.Module:
    """Build model ``name`` for images of ``image_shape`` ((H, W) or (H, W, C))."""
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}', expected one of {sorted(MODELS)}")
    in_channels = image_shape[2] if len(image_shape) == 3 else 1
    return MODELS[name](n_classes=n_classes, in_channels=in_channels, image_size=image_shape[0])


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W[, C]) to float (N, C, H, W) in [0, 1)."""
    if images.ndim == 3:
        images = images.unsqueeze(-1)
    return images.permute(0, 3, 1, 2).float().mul_(1.0 / 256.0).contiguous()
