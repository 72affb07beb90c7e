"""Shared pieces of every model: input normalisation, the classifier wrapper, init.

Every model in the registry is a ``Classifier``: it takes raw images in [0, 1]
and normalises them itself. Attacks (PGD, AutoAttack, torchattacks) clamp their
perturbations to [0, 1], so keeping normalisation inside the model means the
attack's epsilon is measured in pixel space, as in the robustness literature.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from .constants import CIFAR10_MEAN, CIFAR10_STD  # noqa: F401  (re-exported)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` with mean/std stored as buffers.

    Buffers (not parameters) so they follow ``.to(device)`` and are saved in the
    state dict, but are never trained or touched by the optimiser.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        points: bool = False,
    ) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        # Shape 1 x C x 1 x 1 so it broadcasts over N x C x H x W (1 x D over N x D ``points``).
        shape = (1, -1) if points else (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(*shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(*shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = tuple(round(v, 4) for v in self.mean.flatten().tolist())
        std = tuple(round(v, 4) for v in self.std.flatten().tolist())
        return f"mean={mean}, std={std}"


@runtime_checkable
class Backbone(Protocol):
    """What ``Classifier`` needs from an architecture: pooled features and their width."""

    feature_dim: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...


def init_weights(module: nn.Module) -> None:
    """Standard init: Kaiming-normal convs, BN as identity, zero linear bias.

    Applied once to the whole classifier so that every architecture starts from
    the same convention regardless of which file defines it.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            # Keep PyTorch's default (uniform) weight init, which is what the
            # reference CIFAR implementations use; only the bias is zeroed.
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Classifier(nn.Module):
    """``normalize -> backbone.forward_features -> head``.

    Contract: input is a float tensor in [0, 1] of shape N x 3 x H x W, output is
    N x num_classes logits. ``features`` exposes the penultimate (pooled) vector
    so representation analyses do not need to know the backbone's internals.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        arch: str,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"{type(backbone).__name__} must define forward_features() and feature_dim"
            )
        self.arch = arch
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)
        init_weights(self)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, N x feature_dim (after global pooling, before ``head``)."""
        return self.backbone.forward_features(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, num_classes={self.num_classes}"
