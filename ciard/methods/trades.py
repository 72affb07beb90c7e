"""TRADES (Zhang et al., 2019): CE(S(x), y) + beta * KL(S(x) || S(x')).

x' maximises KL(S(x) || S(x')) by PGD from x + 0.001 N(0, 1), as in the reference code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_batchmean
from .base import Method, StepOutput


class TRADES(Method):
    name = "trades"

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.attack = self.pgd(loss="kl", start="normal")

    def compute(self, x, y, progress):
        target = self.attack_target()
        was = self.student.training
        self.student.eval()
        with torch.no_grad(), self.autocast():
            clean_probs = F.softmax(target(x).float(), dim=1)
        self.student.train(was)
        x_adv = self.attack(target, x, y, target_probs=clean_probs)
        self.student.train()
        with self.autocast():
            logits_nat = self.student(x)
            logits_adv = self.student(x_adv)
        loss_nat = F.cross_entropy(logits_nat.float(), y)
        # KL(S(x) || S(x')) with gradient through both (the TRADES regulariser)
        loss_rob = kd_batchmean(F.softmax(logits_nat.float(), dim=1), logits_adv)
        loss = loss_nat + self.cfg.method.trades_beta * loss_rob
        return StepOutput(loss, {"loss_ce": loss_nat.detach(), "loss_kl": loss_rob.detach()},
                          logits_adv)

