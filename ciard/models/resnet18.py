"""ResNet-18 with the usual CIFAR stem (3x3 stride-1 conv, no max-pool)."""

from __future__ import annotations

import torch
from torch import nn

from .basic_block import make_stage


class ResNet18(nn.Module):
    """64-128-256-512 basic-block ResNet-18.

    The ImageNet 7x7/2 conv + max-pool stem would shrink a 32x32 image to 8x8
    before the first block; the CIFAR stem keeps full resolution instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = make_stage(64, 64, 2, stride=1)
        self.layer2 = make_stage(64, 128, 2, stride=2)
        self.layer3 = make_stage(128, 256, 2, stride=2)
        self.layer4 = make_stage(256, 512, 2, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 512

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(self.pool(out), 1)
