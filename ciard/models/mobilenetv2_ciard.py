"""The MobileNetV2 of the CIARD authors' code, for comparisons with the paper's figures.

The CIARD, RSLAD, ARD and MTARD repositories all use the same CIFAR MobileNetV2
(``cifar10_models/mobilenet_v2.py`` there), which differs from the paper-faithful
``mobilenetv2`` of this registry in three ways:

* every block keeps its 1x1 expansion convolution, also in the first stage, whose expansion
  factor is 1 (a 32 -> 32 1x1 convolution with BatchNorm and ReLU);
* a stride-1 block whose channel count changes still has a residual: its shortcut is a
  **projection**, a 1x1 convolution followed by BatchNorm (stages 16, 24, 96 and 320);
  stride-2 blocks have none;
* no width multiplier.

Stem (3x3 conv, 32 channels, stride 1), stage settings, the 1280-channel last 1x1 conv and
the pooling over the final 4x4 map are those of ``mobilenetv2``. As every registry model it
normalises its [0, 1] input itself, where the authors' model takes [0, 1] images unnormalised:
the first convolution and its BatchNorm absorb a per-channel affine map of the input, so the
two parametrise the same functions.
"""
from __future__ import annotations

import torch
from torch import nn

from .mobilenetv2 import CIFAR_INVERTED_RESIDUAL_SETTING, LAST_CHANNELS, STEM_CHANNELS


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch)]


class ProjectionBlock(nn.Module):
    """1x1 expand - 3x3 depthwise - 1x1 linear projection; at stride 1 a residual, through a
    1x1 conv + BN projection when the channel count changes."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = expansion * in_ch
        # a fresh nn.ReLU per activation: Captum hooks each one separately
        self.conv = nn.Sequential(
            *_conv_bn(in_ch, hidden, 1), nn.ReLU(),
            *_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU(),
            *_conv_bn(hidden, out_ch, 1),
        )
        self.residual = stride == 1
        self.shortcut: nn.Module = (
            nn.Sequential(*_conv_bn(in_ch, out_ch, 1)) if self.residual and in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + self.shortcut(x) if self.residual else out


class MobileNetV2CIARD(nn.Module):
    """The authors' CIFAR MobileNetV2 as a registry backbone (``mobilenetv2-ciard``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(3, STEM_CHANNELS, 3), nn.ReLU()]
        in_ch = STEM_CHANNELS
        for t, c, n, s in CIFAR_INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(ProjectionBlock(in_ch, c, t, s if i == 0 else 1))
                in_ch = c
        layers += [*_conv_bn(in_ch, LAST_CHANNELS, 1), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = LAST_CHANNELS

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(x)), 1)
