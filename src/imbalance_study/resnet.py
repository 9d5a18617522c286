"""ResNet-10 (the paper's ImageNet network), kept apart because torchvision.models is slow to import."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


class ResNet10(ResNet):
    """ResNet-10: torchvision's ResNet with one BasicBlock per stage ([1, 1, 1, 1]).

    torchvision's own init: Kaiming normal (fan_out, ReLU) for every convolution, batch-norm
    weights 1 and biases 0, the final ``fc`` with PyTorch's default Linear init.
    ``features`` is the globally pooled 512-d vector ``fc`` reads.
    """

    output_layers = ("fc",)

    def __init__(self, n_classes: int = 1000, in_channels: int = 3, image_size: int = 224):
        super().__init__(BasicBlock, [1, 1, 1, 1], num_classes=n_classes)
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
