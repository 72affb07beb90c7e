"""Tests for the model registry in ``ciard.models``.

Sized for a 2-core CPU: tiny batches, and the two big WideResNets only run at
batch 2 / 32x32 (the full set of checks covers the small nets, wrn-16-4 included).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable, Iterator

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ciard.models import (
    MODEL_NAMES,
    Classifier,
    Normalize,
    build_model,
    canonical_model_name,
    is_valid_model_name,
)

BIG_NAMES = ["wrn-28-10", "wrn-34-10"]
LIGHT_NAMES = [n for n in MODEL_NAMES if n not in BIG_NAMES]
# Names of the torch functions an activation can go through; used to spot
# functional ReLUs that bypass nn.ReLU modules (Captum cannot hook those).
RELU_FUNCS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_"}


@pytest.fixture(autouse=True)
def _deterministic() -> Iterator[None]:
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module", params=MODEL_NAMES)
def model(request: pytest.FixtureRequest) -> Classifier:
    """One model per registered name, shared by the tests that only read it.

    Module scope makes pytest group the tests by name and free each model
    before building the next, so the 46M-parameter WRN-34-10 is built once.
    """
    return build_model(request.param).train()


def _images(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size)


class _FunctionCounter(TorchFunctionMode):
    """Counts torch functions by name while active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        self.counts[getattr(func, "__name__", str(func))] += 1
        return func(*args, **(kwargs or {}))


# --- every registered name -------------------------------------------------


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_and_features_shape(name: str, num_classes: int) -> None:
    net = build_model(name, num_classes=num_classes).train()
    assert isinstance(net, Classifier)
    assert net.arch == name
    assert net.num_classes == num_classes
    assert isinstance(net.head, nn.Linear) and net.head.out_features == num_classes
    x = _images()
    with torch.no_grad():
        logits = net(x)
        feats = net.features(x)
    assert logits.shape == (2, num_classes)
    assert feats.shape == (2, net.backbone.feature_dim) == (2, net.feature_dim)
    assert torch.isfinite(logits).all()
    assert torch.isfinite(feats).all()


def test_relu_modules_are_distinct_and_not_inplace(model: Classifier) -> None:
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus, "expected nn.ReLU modules"
    for m in model.modules():
        assert not getattr(m, "inplace", False), f"inplace module {m}"
        # ReLU6 is a Hardtanh, which Captum's guided backprop does not override.
        assert not isinstance(m, nn.Hardtanh), f"use nn.ReLU, not {type(m).__name__}"

    calls: Counter[int] = Counter()
    handles = [
        r.register_forward_hook(lambda mod, inp, out: calls.update([id(mod)])) for r in relus
    ]
    try:
        with torch.no_grad(), _FunctionCounter() as fc:
            model(_images())
    finally:
        for h in handles:
            h.remove()
    # Each ReLU module runs exactly once: none is reused, none is dead.
    assert [calls[id(r)] for r in relus] == [1] * len(relus)
    # Every activation in the forward goes through one of those modules.
    functional = sum(fc.counts[f] for f in RELU_FUNCS)
    assert functional == len(relus), f"{functional - len(relus)} activations bypass nn.ReLU"


def test_input_gradient(model: Classifier) -> None:
    x = _images().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1]))
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.shape == x.shape
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_forward_is_head_of_features(model: Classifier) -> None:
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.features(x)))


# --- small nets only (cheap enough for the extra checks) ------------------------


@pytest.mark.parametrize("name", LIGHT_NAMES)
def test_accepts_64x64_input(name: str) -> None:
    net = build_model(name, num_classes=200).train()
    with torch.no_grad():
        logits = net(_images(size=64))
        feats = net.features(_images(size=64))
    assert logits.shape == (2, 200)
    assert feats.shape == (2, net.feature_dim)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["resnet20", "smallcnn", "mobilenetv2_x0.5"])
def test_bf16_autocast_channels_last(name: str) -> None:
    net = build_model(name).train().to(memory_format=torch.channels_last)
    x = _images().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x)
    logits.float().sum().backward()
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits.float()).all()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_mobilenetv2_ends_at_4x4_on_32x32() -> None:
    net = build_model("mobilenetv2")
    with torch.no_grad():
        fmap = net.backbone.layers(net.normalize(_images()))
    assert fmap.shape[-2:] == (4, 4)


def test_mobilenetv2_ciard_is_the_authors_network() -> None:
    """CIARD2025/CIARD ``cifar10_models/mobilenet_v2.py``: 2,296,922 parameters at 10 classes
    (checked once against that file: with its weights loaded and identity normalisation the
    outputs agree to 1e-7), a 1x1 expansion conv in every block, a conv + BN projection
    shortcut in the four stride-1 blocks whose width changes, no residual at stride 2."""
    from ciard.models.mobilenetv2_ciard import ProjectionBlock
    net = build_model("mobilenetv2-ciard")
    assert sum(p.numel() for p in net.parameters()) == 2_296_922
    assert sum(p.numel() for p in net.parameters()) != sum(p.numel() for p in build_model("mobilenetv2").parameters())
    blocks = [m for m in net.modules() if isinstance(m, ProjectionBlock)]
    assert len(blocks) == 17 and sum(b.residual for b in blocks) == 14
    assert all(b.conv[0].kernel_size == (1, 1) for b in blocks) and blocks[0].conv[0].out_channels == 32
    projections = [(b.conv[0].in_channels, b.conv[-1].num_features) for b in blocks
                   if isinstance(b.shortcut, nn.Sequential)]
    assert projections == [(32, 16), (16, 24), (64, 96), (160, 320)]
    assert canonical_model_name("MobileNetV2_CIARD") == "mobilenetv2-ciard"
    with pytest.raises(ValueError):
        build_model("mobilenetv2-ciard", width_mult=0.5)


def test_standard_init() -> None:
    net = build_model("resnet20")
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert torch.all(net.head.bias == 0)


# --- normalisation ---------------------------------------------------------------


def test_normalize_buffers_and_values() -> None:
    net = build_model("smallcnn", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    names = dict(net.named_buffers())
    assert "normalize.mean" in names and "normalize.std" in names
    assert not any(n.startswith("normalize.") for n, _ in net.named_parameters())
    x = _images()
    torch.testing.assert_close(net.normalize(x), (x - 0.5) / 0.25)


def test_normalize_default_is_cifar10() -> None:
    norm = Normalize()
    torch.testing.assert_close(norm.mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))
    torch.testing.assert_close(norm.std.flatten(), torch.tensor([0.2471, 0.2435, 0.2616]))


# --- names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias, canonical",
    [
        ("resnet-20", "resnet20"),
        ("ResNet20", "resnet20"),
        ("RESNET_56", "resnet56"),
        ("resnet-18", "resnet18"),
        ("wrn_34_10", "wrn-34-10"),
        ("WRN-28-10", "wrn-28-10"),
        ("wide_resnet_16_4", "wrn-16-4"),
        ("wrn-40-2", "wrn-40-2"),
        ("MobileNetV2", "mobilenetv2"),
        ("mobilenet_v2", "mobilenetv2"),
        ("mobilenetv2-x0.5", "mobilenetv2_x0.5"),
        ("mobilenetv2_x1.0", "mobilenetv2"),
        ("SmallCNN", "smallcnn"),
        ("small-cnn", "smallcnn"),
    ],
)
def test_aliases(alias: str, canonical: str) -> None:
    assert is_valid_model_name(alias)
    assert canonical_model_name(alias) == canonical


def test_registered_names_are_canonical() -> None:
    assert all(is_valid_model_name(n) and canonical_model_name(n) == n for n in MODEL_NAMES)


@pytest.mark.parametrize("bad", ["resnet99", "vgg16", "wrn-30-10", "mobilenetv22", ""])
def test_unknown_name_raises(bad: str) -> None:
    assert not is_valid_model_name(bad)
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        build_model(bad)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError) as info:
        build_model("resnet99")
    msg = str(info.value)
    assert "unknown model 'resnet99'" in msg
    assert all(n in msg for n in MODEL_NAMES)


def test_width_mult_kwarg() -> None:
    by_kwarg = build_model("mobilenetv2", width_mult=0.5)
    by_name = build_model("mobilenetv2_x0.5")
    assert by_kwarg.arch == by_name.arch == "mobilenetv2_x0.5"
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(by_kwarg) == count(by_name) < count(build_model("mobilenetv2"))
    with pytest.raises(ValueError, match="width_mult"):
        build_model("mobilenetv2_x0.5", width_mult=0.75)
    with pytest.raises(ValueError, match="width_mult"):
        build_model("resnet20", width_mult=0.5)


def test_bad_kwargs() -> None:
    with pytest.raises(TypeError):
        build_model("smallcnn", depth=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        build_model("smallcnn", num_classes=0)
