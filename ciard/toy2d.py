"""``toy2d``: labelled points in the plane for the Playground (moons, circles, spirals, blobs).

Each dataset has 2 to 4 classes, a noise level and separate train and test points drawn from
the same distribution, all from one seed. Coordinates are scaled so every dataset spans about
[-1.5, 1.5] on each axis, so one eps (an L-inf radius in these units) means the same on all of
them. Points are float32 ``N x 2`` tensors, not images: they are used with ``mlp-WxD`` models
and with attacks built with ``bounds=None`` (no [0, 1] clamp). The CIFAR data layer
(:mod:`ciard.data`) holds uint8 images; this module is the separate, tiny source for 2-D runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DATASETS: tuple[str, ...] = ("moons", "circles", "spirals", "blobs")
MIN_CLASSES, MAX_CLASSES = 2, 4
MAX_NOISE = 1.0
MAX_POINTS = 20_000
#: half the side of the square every dataset is scaled into (before noise)
EXTENT = 1.5


class ToyDataError(ValueError):
    """A toy dataset setting is out of range; the message is one line naming it."""


@dataclass
class Toy2D:
    """Train and test points of one toy dataset: ``x`` float32 N x 2, ``y`` int64 N."""

    name: str
    num_classes: int
    noise: float
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def bounds(self, margin: float = 0.3) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) covering every point plus ``margin``: the plotted square."""
        allx = torch.cat([self.x_train, self.x_test])
        lo, hi = allx.min(0).values - margin, allx.max(0).values + margin
        return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _moons(n: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k interleaved half-moons; class c's arc is rotated by c * 2 pi / k around the centre
    (k = 2: sklearn's two moons: upper arc and the lower arc shifted right)."""
    pts = []
    for c, m in enumerate(n.tolist()):
        t = torch.rand(m, generator=g) * math.pi
        if k == 2:
            arc = torch.stack([torch.cos(t), torch.sin(t)], 1) if c == 0 else \
                torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
            pts.append(arc - torch.tensor([0.5, 0.25]))
        else:
            a = 2 * math.pi * c / k
            arc = torch.stack([torch.cos(t) - 0.5, torch.sin(t) - 0.25], 1)
            rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            pts.append(arc @ rot.T + 0.6 * torch.tensor([math.cos(a), math.sin(a)]))
    return torch.cat(pts)


def _circles(n: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k concentric rings of radii 1/k .. 1."""
    pts = []
    for c, m in enumerate(n.tolist()):
        t = torch.rand(m, generator=g) * 2 * math.pi
        r = (c + 1) / k
        pts.append(r * torch.stack([torch.cos(t), torch.sin(t)], 1))
    return torch.cat(pts)


def _spirals(n: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k interleaved arms of an Archimedean spiral, 1.25 turns each."""
    pts = []
    for c, m in enumerate(n.tolist()):
        s = torch.rand(m, generator=g).sqrt()           # denser towards the outside
        t = s * 2.5 * math.pi + 2 * math.pi * c / k
        pts.append(s.unsqueeze(1) * torch.stack([torch.cos(t), torch.sin(t)], 1))
    return torch.cat(pts)


def _blobs(n: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k Gaussian blobs (sd 0.25 before noise) on a circle: neighbours overlap as noise grows."""
    pts = []
    for c, m in enumerate(n.tolist()):
        a = 2 * math.pi * c / k + math.pi / 4
        centre = 0.7 * torch.tensor([math.cos(a), math.sin(a)])
        pts.append(centre + 0.25 * torch.randn(m, 2, generator=g))
    return torch.cat(pts)


_MAKERS = {"moons": _moons, "circles": _circles, "spirals": _spirals, "blobs": _blobs}
#: noise is a standard deviation in units of the final (scaled) coordinates, times this per dataset
#: (rings and spiral arms are closer together than the moons, so the same slider value hurts more)
_NOISE_UNIT = {"moons": 0.5, "circles": 0.35, "spirals": 0.3, "blobs": 1.0}


def check(name: str, num_classes: int, noise: float, n_train: int, n_test: int) -> None:
    """ToyDataError with one line for a setting out of range."""
    if name not in DATASETS:
        raise ToyDataError(f"unknown toy dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or not MIN_CLASSES <= num_classes <= MAX_CLASSES:
        raise ToyDataError(f"classes = {num_classes!r} must be an integer from {MIN_CLASSES} to {MAX_CLASSES}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and 0.0 <= noise <= MAX_NOISE):
        raise ToyDataError(f"noise = {noise!r} must be a number in [0, {MAX_NOISE:g}]")
    for label, n in (("train points", n_train), ("test points", n_test)):
        if isinstance(n, bool) or not isinstance(n, int) or not num_classes <= n <= MAX_POINTS:
            raise ToyDataError(f"{label} = {n!r} must be an integer from {num_classes} to {MAX_POINTS}")


def _draw(name: str, k: int, noise: float, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    per = torch.full((k,), n // k, dtype=torch.long)
    per[: n % k] += 1
    y = torch.repeat_interleave(torch.arange(k), per)
    x = _MAKERS[name](per, k, g)
    return x, y


def make_toy2d(name: str = "moons", num_classes: int = 2, noise: float = 0.1, *,
               n_train: int = 300, n_test: int = 300, seed: int = 0) -> Toy2D:
    """Draw a toy dataset; the same arguments give the same points (its own generator)."""
    check(name, num_classes, noise, n_train, n_test)
    g = torch.Generator().manual_seed(int(seed))
    xs, ys = zip(*(_draw(name, num_classes, noise, n, g) for n in (n_train, n_test)))
    # one scale for both splits, from the noise-free shape: every dataset spans about +-EXTENT
    scale = EXTENT / float(torch.cat(xs).abs().max())
    out = []
    for x, y in zip(xs, ys):
        x = x * scale + noise * _NOISE_UNIT[name] * torch.randn(x.shape, generator=g)
        perm = torch.randperm(len(y), generator=g)
        out += [x[perm].float().contiguous(), y[perm].long().contiguous()]
    return Toy2D(name, num_classes, float(noise), *out)
