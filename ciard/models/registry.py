"""Name -> architecture lookup behind ``build_model``.

Names are parsed with patterns rather than looked up in a fixed table so that
the spellings people actually type on the command line ("ResNet-20",
"wrn_34_10", "mobilenet_v2_x0.5") all resolve to one canonical name, which is
what ends up in checkpoints and result tables.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .constants import CIFAR10_MEAN, CIFAR10_STD

if TYPE_CHECKING:
    from torch import nn

    from .common import Classifier

# Canonical names for --help text and tests. Any wrn-D-K with (D-4) % 6 == 0 and
# any mobilenetv2_xW are accepted too; these are the commonly used ones.
MODEL_NAMES: list[str] = [
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet18",
    "wrn-16-4",
    "wrn-28-10",
    "wrn-34-10",
    "mobilenetv2",
    "mobilenetv2_x0.5",
    "mobilenetv2-ciard",
    "smallcnn",
    "airbench94",
]

_CIFAR_RESNET_DEPTHS = (20, 32, 56)
# Size bounds: a name (typed, or read from a checkpoint) must not make build_model allocate
# without limit. wrn-70-20 (~0.4 G parameters) and mobilenetv2_x4 are well past any model used
# here; wrn-1000-1000 would need ~256 GB.
MAX_WRN_DEPTH = 70
MAX_WRN_WIDEN = 20
MAX_MOBILENET_WIDTH = 4.0
MAX_CLASSES = 100_000
_SEP = r"[-_ ]?"
_RESNET_RE = re.compile(rf"resnet{_SEP}(\d+)")
_WRN_RE = re.compile(rf"(?:wrn|wide{_SEP}resnet){_SEP}(\d+)[-_x ](\d+)")
# The width suffix needs a separator or an "x" so "mobilenetv22" is not read as width 2.
_MOBILENET_RE = re.compile(rf"mobilenet{_SEP}v2(?:(?:[-_ ]x?|x)(\d+(?:\.\d*)?|\.\d+))?")
# the CIARD authors' MobileNetV2 (projection shortcuts; mobilenetv2_ciard.py)
_MOBILENET_CIARD_RE = re.compile(rf"mobilenet{_SEP}v2{_SEP}ciard")
_SMALLCNN_RE = re.compile(rf"small{_SEP}cnn")
#: airbench-style nets by their conv-group widths; airbench94 is 64/256/256
_AIRBENCH_WIDTHS = {"airbench94": (64, 256, 256), "airbench-half": (32, 128, 128)}
#: mlp-WxD: D hidden layers of W units on 2-D points (the Playground); bounded like the others
_MLP_RE = re.compile(r"mlp[-_ ]?(\d+)x(\d+)")
MAX_MLP_WIDTH = 4096
MAX_MLP_DEPTH = 32

BackboneFactory = Callable[[], "nn.Module"]


def _lazy(module: str, cls: str, *args: Any, **kwargs: Any) -> BackboneFactory:
    """A factory that imports its architecture (and torch) only when called: parsing and checking
    a name stays torch-free, so a typo'd ``--student`` is refused without loading torch."""
    def factory() -> "nn.Module":
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(*args, **kwargs)
    return factory


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)} "
        "(also any wrn-D-K with (D-4) % 6 == 0, mobilenetv2_xW for width multiplier W, and "
        "mlp-WxD on 2-D points; mobilenetv2-ciard is the CIARD authors' variant)"
    )


def _mobilenet_name(width_mult: float) -> str:
    return "mobilenetv2" if width_mult == 1.0 else f"mobilenetv2_x{width_mult:g}"


def resolve_model_name(
    name: str, width_mult: float | None = None
) -> tuple[str, BackboneFactory]:
    """Return ``(canonical_name, backbone_factory)`` for ``name`` without building it.

    Raises ``ValueError`` for unknown or invalid names, and for a ``width_mult``
    that does not apply or contradicts the one in the name.
    """
    if not isinstance(name, str):
        raise _unknown(str(name))
    key = name.strip().lower()

    if _MOBILENET_CIARD_RE.fullmatch(key):
        if width_mult is not None:
            raise ValueError(f"width_mult only applies to mobilenetv2, not {name!r}")
        return "mobilenetv2-ciard", _lazy("mobilenetv2_ciard", "MobileNetV2CIARD")

    if m := _MOBILENET_RE.fullmatch(key):
        name_width = float(m.group(1)) if m.group(1) is not None else None
        if name_width is not None and width_mult is not None and name_width != width_mult:
            raise ValueError(
                f"model {name!r} implies width_mult={name_width:g} but width_mult={width_mult:g} was given"
            )
        width = name_width if name_width is not None else (width_mult if width_mult is not None else 1.0)
        if not 0 < width <= MAX_MOBILENET_WIDTH:
            raise ValueError(f"invalid model {name!r}: width multiplier must be in (0, {MAX_MOBILENET_WIDTH:g}]")
        return _mobilenet_name(width), _lazy("mobilenetv2", "MobileNetV2", width_mult=width)

    # Only MobileNetV2 has a width multiplier; silently ignoring it elsewhere
    # would let a typo'd config train the wrong model.
    if width_mult is not None:
        raise ValueError(f"width_mult only applies to mobilenetv2, not {name!r}")

    if m := _RESNET_RE.fullmatch(key):
        depth = int(m.group(1))
        if depth == 18:
            return "resnet18", _lazy("resnet18", "ResNet18")
        if depth in _CIFAR_RESNET_DEPTHS:
            return f"resnet{depth}", _lazy("resnet_cifar", "CifarResNet", depth)
        raise _unknown(name)

    if m := _WRN_RE.fullmatch(key):
        depth, widen = int(m.group(1)), int(m.group(2))
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"invalid model {name!r}: WideResNet depth {depth} must be >= 10 with (D-4) % 6 == 0"
            )
        if widen < 1:
            raise ValueError(f"invalid model {name!r}: WideResNet widen factor must be >= 1")
        if depth > MAX_WRN_DEPTH or widen > MAX_WRN_WIDEN:
            raise ValueError(f"model {name!r} is too large: WideResNets go up to depth {MAX_WRN_DEPTH} "
                             f"and widen factor {MAX_WRN_WIDEN} here")
        return f"wrn-{depth}-{widen}", _lazy("wideresnet", "WideResNet", depth, widen)

    if _SMALLCNN_RE.fullmatch(key):
        return "smallcnn", _lazy("smallcnn", "SmallCNN")

    if key in _AIRBENCH_WIDTHS:
        widths = _AIRBENCH_WIDTHS[key]
        return key, _lazy("airbench", "AirbenchNet", widths)

    if m := _MLP_RE.fullmatch(key):
        width, depth = int(m.group(1)), int(m.group(2))
        if not (1 <= width <= MAX_MLP_WIDTH and 1 <= depth <= MAX_MLP_DEPTH):
            raise ValueError(f"invalid model {name!r}: mlp-WxD needs 1 <= W <= {MAX_MLP_WIDTH} "
                             f"and 1 <= D <= {MAX_MLP_DEPTH}")
        return f"mlp-{width}x{depth}", _lazy("mlp", "MLP", width, depth)

    raise _unknown(name)


def is_point_model(name: str) -> bool:
    """True for ``mlp-WxD``: a model of 2-D points (the Playground), not of images."""
    try:
        return resolve_model_name(name)[0].startswith("mlp-")
    except ValueError:
        return False


def check_buildable(name: str) -> str | None:
    """Why ``build_model(name)`` would refuse the name (one line), or None (builds nothing)."""
    try:
        resolve_model_name(name)
    except ValueError as exc:
        return str(exc)
    return None


def is_valid_model_name(name: str) -> bool:
    """True if ``build_model(name)`` would accept the name (cheap: builds nothing)."""
    return check_buildable(name) is None


def canonical_model_name(name: str) -> str:
    """The canonical spelling of ``name``, e.g. ``'ResNet-20'`` -> ``'resnet20'``."""
    return resolve_model_name(name)[0]


def build_model(
    name: str,
    num_classes: int = 10,
    *,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    width_mult: float | None = None,
) -> Classifier:
    """Build a freshly initialised ``Classifier`` taking [0, 1] images.

    ``mean``/``std`` go to the model's ``Normalize`` layer; ``width_mult`` is
    only valid for MobileNetV2 (``mobilenetv2_x0.5`` in the name works too).
    Unknown keyword arguments raise ``TypeError``.
    """
    from .common import Classifier, Normalize
    from .mlp import MLP_INPUTS
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be an int from 1 to {MAX_CLASSES}, got {num_classes!r}")
    arch, factory = resolve_model_name(name, width_mult)
    if arch.startswith("mlp-"):   # N x 2 points in the plane, not images
        if mean is CIFAR10_MEAN and std is CIFAR10_STD:   # no per-channel image statistics
            mean, std = (0.0,) * MLP_INPUTS, (1.0,) * MLP_INPUTS
        model = Classifier(factory(), num_classes=num_classes, arch=arch, mean=mean, std=std)
        model.normalize = Normalize(mean, std, points=True)
        return model
    return Classifier(factory(), num_classes=num_classes, arch=arch, mean=mean, std=std)
