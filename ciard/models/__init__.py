"""Model registry: ``build_model(name)`` returns a ``Classifier`` on [0, 1] images."""

from .common import CIFAR10_MEAN, CIFAR10_STD, Classifier, Normalize
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
