"""Model registry: ``build_model(name)`` returns a ``Classifier`` on [0, 1] images.

Importing this package does not import torch: the name checks (``check_buildable``,
``canonical_model_name``...) are torch-free, and ``Classifier`` and ``Normalize`` are loaded
on first use.
"""
from typing import Any

from .constants import CIFAR10_MEAN, CIFAR10_STD
from .registry import (
    MAX_CLASSES,
    MODEL_NAMES,
    build_model,
    canonical_model_name,
    check_buildable,
    is_point_model,
    is_valid_model_name,
    resolve_model_name,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "MAX_CLASSES",
    "MODEL_NAMES",
    "Classifier",
    "Normalize",
    "build_model",
    "canonical_model_name",
    "check_buildable",
    "is_point_model",
    "is_valid_model_name",
    "resolve_model_name",
]


def __getattr__(name: str) -> Any:
    if name in ("Classifier", "Normalize"):
        from . import common
        return getattr(common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
