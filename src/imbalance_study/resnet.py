"""Residual networks: ResNet-10 (the paper's ImageNet network) and ResNet-32 (the CIFAR network of
long-tailed recognition, Cao et al. 2019), kept apart because torchvision.models is slow to import."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from .models import NormedLinear


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


class _ShortcutA(nn.Module):
    """He et al.'s option A: the identity, subsampled by 2 and zero-padded in channels, so that a stage
    change adds no parameters (as Cao et al.'s CIFAR ResNets)."""

    def __init__(self, added_channels: int):
        super().__init__()
        self.before = added_channels // 2
        self.after = added_channels - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.before, self.after))


class _CifarBlock(nn.Module):
    """A basic block: 3x3 conv, BN, ReLU, 3x3 conv, BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _ShortcutA(planes - in_planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet32(nn.Module):
    """ResNet-32 for 32x32 images (He et al. 2016, section 4.2; Cao et al. 2019's CIFAR network).

    3x3 conv 16, BN, ReLU; three stages of 5 basic blocks with 16, 32 and 64 channels (the second
    and third start with stride 2, option-A shortcuts); global average pool; ``fc`` to the classes,
    a ``NormedLinear`` cosine classifier with ``normed_output`` (for LDAM). 0.46 M parameters.
    Its init, as Cao et al.'s: Kaiming normal (fan_in, ReLU gain) for every convolution and linear
    layer, batch norm weights 1 and biases 0, the linear bias PyTorch's default.
    ``features`` is the pooled 64-d vector ``fc`` reads. Batch norm keeps running statistics, so it
    trains one run at a time (``stacked.supports``).
    """

    output_layers = ("fc",)
    blocks_per_stage = 5
    widths = (16, 32, 64)

    def __init__(self, n_classes: int = 10, in_channels: int = 3, image_size: int = 32, normed_output: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, self.widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.widths[0])
        planes = self.widths[0]
        for stage, width in enumerate(self.widths, start=1):
            blocks = [_CifarBlock(planes if block == 0 else width, width, 2 if block == 0 and stage > 1 else 1)
                      for block in range(self.blocks_per_stage)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            planes = width
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
        # The classifier last, so that the backbone's initial weights are the same with either classifier:
        # the methods of a seed (ERM and LDAM's cosine classifier alike) start from the same network.
        self.fc = NormedLinear(planes, n_classes) if normed_output else nn.Linear(planes, n_classes)
        if not normed_output:
            nn.init.kaiming_normal_(self.fc.weight, mode="fan_in", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
