"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016) with pre-activation blocks."""

from __future__ import annotations

import torch
from torch import nn


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus shortcut (pre-activation ordering).

    When the shape changes, the 1x1 projection shortcut reads the *activated*
    input, as in the reference WRN code used by the adversarial-training papers
    (TRADES, ARD, RSLAD), so checkpoints and behaviour match theirs.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        # Dropout is 0 for robust training; only create the module when used so
        # the module tree stays identical to the reference implementation.
        self.dropout: nn.Module = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = stride == 1 and in_planes == planes
        self.shortcut: nn.Module = (
            nn.Identity()
            if self.equal_in_out
            else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu1(self.bn1(x))
        residual = x if self.equal_in_out else self.shortcut(o)
        out = self.conv1(o)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + residual


def _stage(in_planes: int, planes: int, n: int, stride: int, drop_rate: float) -> nn.Sequential:
    blocks = [WideBasicBlock(in_planes, planes, stride, drop_rate)]
    blocks += [WideBasicBlock(planes, planes, 1, drop_rate) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


class WideResNet(nn.Module):
    """WRN-depth-widen: three stages of 16k/32k/64k channels, (depth-4)/6 blocks each."""

    def __init__(self, depth: int, widen_factor: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must satisfy (depth-4) % 6 == 0, got {depth}")
        if widen_factor < 1:
            raise ValueError(f"WideResNet widen factor must be >= 1, got {widen_factor}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.depth = depth
        self.widen_factor = widen_factor
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = _stage(widths[0], widths[1], n, 1, drop_rate)
        self.block2 = _stage(widths[1], widths[2], n, 2, drop_rate)
        self.block3 = _stage(widths[2], widths[3], n, 2, drop_rate)
        # Pre-activation nets end with a final BN-ReLU before pooling.
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = widths[3]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn(out))
        return torch.flatten(self.pool(out), 1)
