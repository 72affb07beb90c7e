"""MTARD / B-MTARD: dual-teacher KD with entropy-balanced temperatures and normalised-loss
weights, no push loss and a frozen robust teacher: CIARD's step with those parts switched off.

It follows the official B-MTARD script (``zhaoshiji123/MTARD-extension``,
``resnet18_mtard_cifar10.py``, with ``mtard_inner_loss_ce`` of ``zhaoshiji123/MTARD``): the
attack comes first (student in eval mode, from the unclamped x + 0.001 N(0, 1)), then S(x')
and S(x) in train mode; the weights move with the step's own losses before they form its loss.
"""
from __future__ import annotations

from dataclasses import replace

from .ciard import CIARD


class MTARD(CIARD):
    name = "mtard"
    clean_pass_first = False

    def __init__(self, cfg, *args, **kw) -> None:
        cfg = replace(cfg, method=replace(cfg.method, push_weight=0.0, itt=False,
                                          adaptive_temp=True, adaptive_weights=True))
        super().__init__(cfg, *args, **kw)
