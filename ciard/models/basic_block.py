"""The post-activation residual basic block shared by the CIFAR ResNets and ResNet-18."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, add shortcut, ReLU (He et al. 2016).

    Downsampling uses an "option B" 1x1 conv + BN projection shortcut: it works
    for any channel change and avoids the zero-padding lambda of option A, which
    Captum cannot attribute through as a module.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # Two separate ReLU modules (never shared, never inplace) so Captum's
        # guided backprop / layer attribution can hook each activation.
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def make_stage(in_planes: int, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
    """A stage of ``num_blocks`` blocks; only the first one changes stride/width."""
    blocks = [BasicBlock(in_planes, planes, stride)]
    blocks += [BasicBlock(planes, planes, 1) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
