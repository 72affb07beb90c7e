"""CIFAR ResNet-6n+2 (He et al. 2016, Sec. 4.2): three stages of 16/32/64 channels."""

from __future__ import annotations

import torch
from torch import nn

from .basic_block import make_stage


class CifarResNet(nn.Module):
    """ResNet-20/32/56 style backbone; depth = 6n + 2 with n blocks per stage."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = make_stage(16, 16, n, stride=1)
        self.layer2 = make_stage(16, 32, n, stride=2)
        self.layer3 = make_stage(32, 64, n, stride=2)
        # Adaptive pooling so 64x64 (Tiny-ImageNet) inputs work unchanged.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 64

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return torch.flatten(self.pool(out), 1)
