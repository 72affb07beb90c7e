"""ARD (Goldblum et al., 2020): alpha T^2 KL(R(x)/T || S(x')/T) + (1 - alpha) CE(S(x), y).

x' = PGD on the student's cross-entropy (uniform start); T = 30, alpha = 1 in the reference,
so only the KD term remains. The robust teacher is frozen and sees clean inputs only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_batchmean, soft
from .base import Method, StepOutput


class ARD(Method):
    name = "ard"
    teachers = ("robust",)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.attack = self.pgd(loss="ce", start="uniform")

    def compute(self, x, y, progress):
        me = self.cfg.method
        robust = self.frozen["robust"]
        with torch.no_grad(), self.autocast():
            t_logits = robust(x)
        x_adv = self.attack(self.attack_target(), x, y)
        self.student.train()
        with self.autocast():
            logits_adv = self.student(x_adv)
            logits_nat = self.student(x) if me.ard_alpha < 1.0 else None
        kd = kd_batchmean(soft(t_logits, me.ard_temp), logits_adv.float() / me.ard_temp)
        loss = me.ard_alpha * me.ard_temp ** 2 * kd
        metrics = {"loss_kd": kd.detach()}
        if logits_nat is not None:
            ce = F.cross_entropy(logits_nat.float(), y)
            loss = loss + (1.0 - me.ard_alpha) * ce
            metrics["loss_ce"] = ce.detach()
        return StepOutput(loss, metrics, logits_adv)
