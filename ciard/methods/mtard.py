"""MTARD / B-MTARD: dual-teacher KD with entropy-balanced temperatures and normalised-loss
weights, no push loss and a frozen robust teacher: CIARD's step with those parts switched off."""
from __future__ import annotations

from dataclasses import replace

from .ciard import CIARD


class MTARD(CIARD):
    name = "mtard"

    def __init__(self, cfg, *args, **kw) -> None:
        cfg = replace(cfg, method=replace(cfg.method, push_weight=0.0, itt=False,
                                          adaptive_temp=True, adaptive_weights=True))
        super().__init__(cfg, *args, **kw)
