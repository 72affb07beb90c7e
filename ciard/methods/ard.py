"""ARD (Goldblum et al., 2020): alpha T^2 KL(R(x)/T || S(x')/T) + (1 - alpha) CE(S(x), y).

As the official code (``goldblum/AdversariallyRobustDistillation``, ``main.py``) does it:

* the KL is ``nn.KLDivLoss()`` with its default element-wise mean, i.e. averaged over batch
  *and* classes (``batchmean / C``, the scale of CIARD's and RSLAD's terms), times ``T^2``;
  T = 30, alpha = 1 (so only the KD term remains);
* x' = PGD on the student's cross-entropy from x + U(-eps, eps) (not clamped before the first
  step), with the student in **train mode**: its BatchNorm uses batch statistics and updates
  its running statistics at every attack step (the official ``AttackPGD`` runs inside
  ``net.train()``). So this attack runs on the live student, not on the folded eval view;
* the student then runs on x' and on x, both in train mode. The pass on x is made even when
  alpha = 1 (the official code always computes it): it adds nothing to the loss but updates
  the BatchNorm running statistics, which the evaluated student uses.

The robust teacher is frozen and sees clean inputs only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_mean, soft
from .base import Method, StepOutput


class ARD(Method):
    name = "ard"
    teachers = ("robust",)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.attack = self.pgd(loss="ce", start="uniform", train_mode=True, clamp_start=False)

    def compute(self, x, y, progress):
        me = self.cfg.method
        robust = self.frozen["robust"]
        with torch.no_grad(), self.autocast():
            t_logits = robust(x)
        x_adv = self.adversarial(x, y)
        self.student.train()
        with self.autocast():
            logits_adv = self.student(x_adv)
            logits_nat = self.student(x)
        kd = kd_mean(soft(t_logits, me.ard_temp), logits_adv.float() / me.ard_temp)
        loss = me.ard_alpha * me.ard_temp ** 2 * kd
        metrics = {"loss_kd": kd.detach()}
        if me.ard_alpha < 1.0:
            ce = F.cross_entropy(logits_nat.float(), y)
            loss = loss + (1.0 - me.ard_alpha) * ce
            metrics["loss_ce"] = ce.detach()
        return StepOutput(loss, metrics, logits_adv)
