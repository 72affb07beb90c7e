"""MobileNetV2 (Sandler et al. 2018) adapted to 32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s) from Table 2 of
# the paper. For CIFAR the stem conv and the 24-channel stage use stride 1
# instead of 2, leaving three stride-2 stages so a 32x32 image ends at 4x4
# (the ImageNet net takes 224x224 to 7x7).
CIFAR_INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 on ImageNet
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (as torchvision does).

    Never rounds down by more than 10%, so small width multipliers keep capacity.
    """
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    # nn.ReLU rather than the paper's ReLU6: Captum's guided backprop and DeepLift
    # only override gradients of nn.ReLU modules, and ReLU6 is a Hardtanh.
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
    )


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise - 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu(in_ch, hidden, 1, 1))
        layers += [
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            # Linear bottleneck: no activation after the projection (paper Sec. 3.2).
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """CIFAR MobileNetV2 backbone with a width multiplier."""

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.width_mult = width_mult
        in_ch = make_divisible(STEM_CHANNELS * width_mult)
        # Like torchvision, the last conv only grows with the multiplier, never
        # shrinks, so thin variants keep a 1280-d representation.
        last_ch = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        layers: list[nn.Module] = [_conv_bn_relu(3, in_ch, 3, stride=1)]
        for t, c, n, s in CIFAR_INVERTED_RESIDUAL_SETTING:
            out_ch = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        layers.append(_conv_bn_relu(in_ch, last_ch, 1, 1))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = last_ch

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(x)), 1)
