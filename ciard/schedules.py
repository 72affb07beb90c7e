"""Learning-rate and step-size schedules, as functions of training progress in [0, 1].

Progress is measured in steps (``step / total_steps``) so the paper's 300-epoch shapes
scale to runs of any length and change smoothly within an epoch.
"""
from __future__ import annotations

import math


def cosine_exp(u: float) -> float:
    """The reference's decay shape: (0.5 + 0.5 cos(pi u)) * exp(-0.01 u^2), u in [0, 1]."""
    u = min(max(u, 0.0), 1.0)
    return (0.5 + 0.5 * math.cos(math.pi * u)) * math.exp(-0.01 * u * u)


def student_lr(base_lr: float, progress: float, kind: str = "ciard") -> float:
    """CIARD: constant for the first half, then cosine_exp over the second half.

    ``triangle``: linear warm-up from 0.2 lr to lr over the first quarter, then linear decay
    to 0 (the short-run shape of airbench, used for the clean teacher).
    """
    if kind == "triangle":
        p = min(max(progress, 0.0), 1.0)
        return base_lr * (0.2 + 0.8 * p / 0.25 if p < 0.25 else (1.0 - p) / 0.75)
    if kind == "constant":
        return base_lr
    if kind == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    if kind == "ciard":
        return base_lr if progress < 0.5 else base_lr * cosine_exp((progress - 0.5) / 0.5)
    raise ValueError(f"unknown lr schedule '{kind}'")


def itt_lr(base_lr: float, progress: float, warmup: float) -> float:
    """Robust-teacher lr: 0 during the warm-up fraction, then cosine_exp over the rest."""
    if progress < warmup or base_lr == 0.0:
        return 0.0
    span = max(1.0 - warmup, 1e-12)
    return base_lr * cosine_exp((progress - warmup) / span)


#: where the reference divides eta_tau / eta_w by 10 (epochs 215, 260, 285 of 300)
ETA_MILESTONES = (215 / 300, 260 / 300, 285 / 300)


def eta_decay(progress: float) -> float:
    """x0.1 once per milestone passed (the reference applied it every batch: a defect)."""
    return 0.1 ** sum(progress >= m for m in ETA_MILESTONES)
