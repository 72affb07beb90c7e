"""Explanations without Streamlit: attributions (Captum), representations, image decoding.

Everything here runs in fp32 on whatever device the model sits on (the app uses the CPU) and
never changes a model: attributions freeze the parameters and put the model in eval mode for
the duration of a call, exactly as the attacks do (:func:`ciard.attacks.attack_mode`).

- :func:`attribute` gives an ``N x H x W`` map per image for Saliency, Integrated Gradients,
  SmoothGrad (Captum's NoiseTunnel over Saliency) or Grad-CAM on the last convolution.
- :func:`penultimate` and :func:`pca_fit` / :func:`pca_project` give the 2-D view of
  penultimate-layer features (PCA by SVD, no scikit-learn).
- :func:`decode_image` turns uploaded bytes into the model's ``1 x 3 x H x W`` input, or
  raises :class:`ImageError` with one line saying what is wrong with the file.
"""
from __future__ import annotations

import io
import warnings
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks
from .attacks import Attack, attack_mode

METHODS = {"saliency": "Saliency (|gradient|)", "integrated_gradients": "Integrated Gradients",
           "smoothgrad": "SmoothGrad (NoiseTunnel)", "gradcam": "Grad-CAM (last conv layer)"}
#: the probing pages' attacks (a few of :data:`ciard.attacks.ATTACKS`), with their labels
ATTACKS = {name: attacks.LABELS[name] for name in ("fgsm", "pgd", "cw", "apgd")}


# -- predictions and attacks -------------------------------------------------------------------
@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities, N x C (eval mode restored afterwards)."""
    with attack_mode(model):
        return F.softmax(model(x).float(), dim=1)


def make_attack(name: str, eps: float, steps: int = 10, step_size: float = 2 / 255,
                seed: int = 0) -> Attack:
    """One of the page's attacks: ``fgsm``, ``pgd``, ``cw`` (CW-inf) or ``apgd`` (APGD-CE),
    built by :func:`ciard.attacks.make_attack` with a seeded random start."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack '{name}'; choose one of: {', '.join(ATTACKS)}")
    seeded = {"generator": torch.Generator().manual_seed(seed)}
    kwargs = {"fgsm": {}, "pgd": dict(steps=steps, step_size=step_size, start="uniform", **seeded),
              "cw": dict(steps=steps, step_size=step_size, **seeded), "apgd": dict(steps=steps, seed=seed)}
    return attacks.make_attack(name, eps=eps, **kwargs[name])


def run_attack(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``attack(model, x, y)``, with eps = 0 meaning no perturbation at all."""
    if attack.eps == 0.0:
        return x.clone()
    return attack(model, x, y)


def follows_fooled_teacher(student_adv, teacher_adv, y):
    """The push view's measure, on adversarial examples x' crafted on a student: (follows, fooled),
    two bool vectors (numpy or torch, like the inputs: probabilities or logits, N x C, and labels N).

    ``fooled``: the clean teacher's prediction on x' is wrong, ``argmax N(x') != y`` (the push
    loss's mask, :mod:`ciard.methods.ciard`); ``follows``: it is fooled and the student predicts
    the same wrong class. The push loss pushes a student's x' prediction away from the fooled
    clean teacher's, so it should follow it less often than a student trained without it.
    """
    teacher_pred = teacher_adv.argmax(1)
    fooled = teacher_pred != y
    return (student_adv.argmax(1) == teacher_pred) & fooled, fooled


# -- attributions --------------------------------------------------------------------------------
def gradcam_layer(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` of a model: where Grad-CAM looks (works for every architecture)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution for Grad-CAM")
    return convs[-1]


def attribute(model: nn.Module, x: torch.Tensor, target: torch.Tensor | int, method: str = "saliency",
              *, ig_steps: int = 16, smooth_samples: int = 8, smooth_std: float = 0.1) -> torch.Tensor:
    """Attribution maps ``N x H x W`` (non-negative) of ``model``'s logit ``target`` for ``x``.

    Pixel methods sum the absolute attribution over colour channels; Grad-CAM's map (ReLU of
    the weighted activations of :func:`gradcam_layer`) is upsampled bilinearly to ``H x W``.
    """
    from captum.attr import IntegratedGradients, LayerGradCam, LayerAttribution, NoiseTunnel, Saliency

    if method not in METHODS:
        raise ValueError(f"unknown attribution method '{method}'; choose one of: {', '.join(METHODS)}")
    x = x.detach().float()
    if isinstance(target, int):
        target = torch.full((x.shape[0],), target, dtype=torch.long)
    target = target.to(x.device)
    with attack_mode(model), torch.enable_grad():
        inp = x.clone().requires_grad_(True)
        if method == "saliency":
            a = Saliency(model).attribute(inp, target=target, abs=True)
        elif method == "integrated_gradients":
            a = IntegratedGradients(model).attribute(inp, baselines=torch.zeros_like(inp), target=target,
                                                     n_steps=ig_steps, internal_batch_size=64).abs()
        elif method == "smoothgrad":
            a = NoiseTunnel(Saliency(model)).attribute(inp, nt_type="smoothgrad", nt_samples=smooth_samples,
                                                       nt_samples_batch_size=smooth_samples,
                                                       stdevs=smooth_std, target=target, abs=True)
        else:
            cam = LayerGradCam(model, gradcam_layer(model)).attribute(inp, target=target, relu_attributions=True)
            a = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear").clamp_min(0)
    return a.detach().float().sum(dim=1)


# -- representations -----------------------------------------------------------------------------
@torch.no_grad()
def penultimate(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Penultimate (pooled) features ``N x D`` from ``Classifier.features``."""
    with attack_mode(model):
        return torch.cat([model.features(x[i:i + batch]).float() for i in range(0, len(x), batch)])


def pca_fit(feats: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, components ``D x k``) of the rows of ``feats`` by SVD of the centred matrix."""
    feats = feats.detach().double()
    mean = feats.mean(dim=0)
    _, _, vh = torch.linalg.svd(feats - mean, full_matrices=False)
    comps = vh[:k].T
    if comps.shape[1] < k:  # fewer samples or dimensions than k: pad with zero directions
        comps = torch.cat([comps, comps.new_zeros(comps.shape[0], k - comps.shape[1])], dim=1)
    # a deterministic sign: the largest-magnitude loading of each component is positive
    signs = torch.sign(comps.gather(0, comps.abs().argmax(dim=0, keepdim=True)))
    signs[signs == 0] = 1
    return mean.float(), (comps * signs).float()


def pca_project(feats: torch.Tensor, mean: torch.Tensor, comps: torch.Tensor) -> torch.Tensor:
    return (feats.float() - mean) @ comps


def kl_per_sample(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row of two probability matrices (natural log)."""
    p = p.float().clamp_min(1e-12)
    q = q.float().clamp_min(1e-12)
    return (p * (p.log() - q.log())).sum(dim=1)


# -- uploaded images ---------------------------------------------------------------------------------
class ImageError(ValueError):
    """An uploaded file is not a usable image; the message says why, in one line."""


MAX_PIXELS = 40_000_000      # beyond this a file is treated as a decompression bomb
MIN_SIDE = 8                 # smaller images carry nothing a 32 x 32 model can use
MAX_BYTES = 10 * 1024 * 1024  # the upload cap of .streamlit/config.toml


def decode_image(data: bytes, size: Sequence[int] = (32, 32)) -> tuple[torch.Tensor, "object"]:
    """Bytes of a PNG/JPEG/WebP/BMP/... -> (``1 x 3 x H x W`` float in [0, 1], the RGB PIL image).

    EXIF rotation is applied, any mode (grayscale, palette, RGBA: composited on white) becomes
    RGB, then the largest centred square is cropped and resized to ``size``.
    """
    from PIL import Image, ImageOps

    if not data:
        raise ImageError("the file is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                w, h = probe.size

                if w * h > MAX_PIXELS:
                    raise ImageError(f"the image is {w} x {h} pixels, too large to decode safely "
                                     f"(limit {MAX_PIXELS // 1_000_000} megapixels)")
                probe.verify()
            img = Image.open(io.BytesIO(data))
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("the image is too large to decode safely (a decompression bomb?)") from None
    except Exception as exc:  # UnidentifiedImageError, truncated data, bad headers, ...
        from PIL import UnidentifiedImageError
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError("this file is not an image that can be read (PNG, JPEG, WebP or BMP)") from None
        raise ImageError(f"the image is damaged or truncated and cannot be decoded ({type(exc).__name__})") from None
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"the image is only {w} x {h} pixels; it needs at least {MIN_SIDE} x {MIN_SIDE}")
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    img = img.convert("RGB")
    W, H = img.size
    s = min(W, H)
    left, top = (W - s) // 2, (H - s) // 2
    img = img.crop((left, top, left + s, top + s)).resize((int(size[1]), int(size[0])), Image.Resampling.BICUBIC)
    import numpy as np
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).unsqueeze(0)
    return arr.float().div_(255.0), img


def to_hwc(x: torch.Tensor) -> "object":
    """One ``3 x H x W`` (or ``1 x 3 x H x W``) image in [0, 1] -> ``H x W x 3`` uint8 numpy array."""
    if x.dim() == 4:
        x = x[0]
    return (x.detach().clamp(0, 1).permute(1, 2, 0).mul(255).round().to(torch.uint8)).numpy()


def upscale(x: torch.Tensor, factor: int = 5) -> torch.Tensor:
    """Nearest-neighbour upscaling of ``N x C x H x W`` images so 32 x 32 pixels stay crisp."""
    return F.interpolate(x.float(), scale_factor=factor, mode="nearest")
