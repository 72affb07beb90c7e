"""TRADES (Zhang et al., 2019): CE(S(x), y) + beta * KL(S(x) || S(x')).

As the official code (``yaodongyu/TRADES``, ``trades.py``, ``trades_loss``) does it:

* x' maximises KL(S(x) || S(x')) by PGD from x + 0.001 N(0, 1) (not clamped before the first
  step), the student in eval mode;
* the KL is ``nn.KLDivLoss(size_average=False)`` divided by the batch size: summed over
  classes, averaged over the batch (``batchmean``), the full KL scale, unlike the
  distillation methods' ``batchmean / C``;
* in train mode the student runs on x (for the CE), then on x', then on x again (for the KL's
  target, through which the gradient also flows). The second clean pass gives the same
  logits as the first but updates the BatchNorm running statistics once more, so it is kept.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attacks import model_mode
from ..losses import kd_batchmean
from .base import Method, StepOutput


class TRADES(Method):
    name = "trades"

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.attack = self.pgd(loss="kl", start="normal", clamp_start=False)

    def compute(self, x, y, progress):
        target = self.attack_target()
        with torch.no_grad(), model_mode(target, train=False), self.autocast():
            clean_probs = F.softmax(target(x).float(), dim=1)
        x_adv = self.attack(target, x, y, target_probs=clean_probs)
        self.student.train()
        with self.autocast():
            logits_nat = self.student(x)
            logits_adv = self.student(x_adv)
            logits_nat_kl = self.student(x)
        loss_nat = F.cross_entropy(logits_nat.float(), y)
        # KL(S(x) || S(x')) with gradient through both (the TRADES regulariser)
        loss_rob = kd_batchmean(F.softmax(logits_nat_kl.float(), dim=1), logits_adv)
        loss = loss_nat + self.cfg.method.trades_beta * loss_rob
        return StepOutput(loss, {"loss_ce": loss_nat.detach(), "loss_kl": loss_rob.detach()},
                          logits_adv)
