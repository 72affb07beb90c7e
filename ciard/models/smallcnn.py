"""A tiny CNN for quick demos and CPU tests."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    # A fresh nn.ReLU per layer so Captum can hook each activation separately.
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]


class SmallCNN(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool, then global average pooling (64-d)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *_conv_bn_relu(3, 32),
            *_conv_bn_relu(32, 32),
            nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64),
            *_conv_bn_relu(64, 64),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 64

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(x)), 1)
