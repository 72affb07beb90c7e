"""A plain ReLU MLP on low-dimensional points: the Playground's models (``mlp-WxD``).

``mlp-64x3`` is three hidden layers of 64 units on 2-D inputs. No BatchNorm: the toy runs
train on small full batches, and without it train and eval mode compute the same function,
so every method's train-mode / eval-mode choice is moot on 2-D data.
"""
from __future__ import annotations

import torch
from torch import nn

#: input dimension of the registry's MLPs (points in the plane)
MLP_INPUTS = 2


class MLP(nn.Module):
    """``depth`` hidden Linear + ReLU layers of ``width`` units; ``forward_features`` is the last."""

    def __init__(self, width: int, depth: int, inputs: int = MLP_INPUTS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(inputs if i == 0 else width, width), nn.ReLU(inplace=False)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))
