"""ciard.explain: attributions, Grad-CAM layers, PCA, KL and image decoding (no Streamlit)."""
from __future__ import annotations

import io

import pytest
import torch

from ciard import explain
from ciard.models import build_model


@pytest.fixture(scope="module")
def two_models():
    torch.manual_seed(0)
    a = build_model("smallcnn").eval()
    torch.manual_seed(1)
    b = build_model("smallcnn").eval()
    return a, b


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_attribution_shapes_finite_and_model_untouched(two_models, method):
    m = two_models[0]
    m.train()
    x = torch.rand(2, 3, 32, 32)
    a = explain.attribute(m, x, torch.tensor([1, 3]), method, ig_steps=4, smooth_samples=2)
    assert a.shape == (2, 32, 32)
    assert torch.isfinite(a).all() and (a >= 0).all()
    assert m.training and all(p.requires_grad and p.grad is None for p in m.parameters())
    m.eval()


def test_saliency_differs_between_models(two_models):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = explain.attribute(two_models[0], x, 0, "saliency")
    b = explain.attribute(two_models[1], x, 0, "saliency")
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("arch", ["resnet20", "smallcnn"])
def test_gradcam_layer_lookup(arch):
    m = build_model(arch).eval()
    layer = explain.gradcam_layer(m)
    assert isinstance(layer, torch.nn.Conv2d)
    assert layer is [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)][-1]
    a = explain.attribute(m, torch.rand(1, 3, 32, 32), 2, "gradcam")
    assert a.shape == (1, 32, 32) and torch.isfinite(a).all()


def test_penultimate_and_pca_projection(two_models):
    x = torch.rand(20, 3, 32, 32)
    f = explain.penultimate(two_models[0], x)
    assert f.shape == (20, 64)
    mean, comps = explain.pca_fit(f)
    xy = explain.pca_project(f, mean, comps)
    assert xy.shape == (20, 2) and torch.isfinite(xy).all()
    assert xy[:, 0].var() >= xy[:, 1].var() - 1e-6   # first component explains the most
    mean1, comps1 = explain.pca_fit(torch.randn(1, 5))  # degenerate input still gives k columns
    assert comps1.shape == (5, 2)


def test_kl_per_sample():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert torch.allclose(explain.kl_per_sample(p, p), torch.zeros(2), atol=1e-6)
    assert (explain.kl_per_sample(p, torch.tensor([[0.9, 0.1], [0.1, 0.9]])) > 0).all()


def test_eps_zero_attack_is_identity(two_models):
    x = torch.rand(2, 3, 32, 32)
    atk = explain.make_attack("pgd", 0.0, 3, 2 / 255)
    assert torch.equal(explain.run_attack(atk, two_models[0], x, torch.tensor([0, 1])), x)
    for name in explain.ATTACKS:
        assert explain.make_attack(name, 8 / 255, 2).eps == pytest.approx(8 / 255)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_decode_image_modes_and_sizes():
    from PIL import Image
    for mode, size in (("RGB", (100, 60)), ("L", (40, 40)), ("RGBA", (50, 80)), ("P", (33, 33))):
        x, pil = explain.decode_image(_png(Image.new(mode, size)))
        assert x.shape == (1, 3, 32, 32) and 0 <= x.min() and x.max() <= 1 and pil.size == (32, 32)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, format="JPEG")
    x, _ = explain.decode_image(buf.getvalue())
    assert x[0, 0].mean() > 0.6


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
    (None, "truncated"),
    ("tiny", "only 1 x 1"),
])
def test_decode_image_bad_inputs(data, words):
    from PIL import Image
    if data is None:
        data = _png(Image.effect_noise((64, 64), 50).convert("RGB"))[:300]
    elif data == "tiny":
        data = _png(Image.new("RGB", (1, 1)))
    with pytest.raises(explain.ImageError, match=words):
        explain.decode_image(data)


def test_decode_image_refuses_a_bomb():
    from PIL import Image
    big = _png(Image.new("1", (10000, 10000)))  # 100 megapixels, a few kB compressed
    with pytest.raises(explain.ImageError, match="too large"):
        explain.decode_image(big)
