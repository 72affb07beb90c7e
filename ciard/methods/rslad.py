"""RSLAD (Zi et al., 2021): 5/6 KL(R(x) || S(x')) + 1/6 KL(R(x) || S(x)).

The robust teacher's soft labels on clean inputs replace the hard labels everywhere, the
attack included: x' maximises KL(R(x) || S(x')) by PGD from x + 0.001 N(0, 1) (not clamped
before the first step), the student in eval mode. As the official code
(``zibojia/RSLAD``, ``resnet18_rslad_cifar10.py``) does, each KL is ``torch.mean`` of the
element-wise ``p (log(p + 1e-5) - log q)``: averaged over batch *and* classes (``batchmean /
C``, the scale of CIARD's terms), where the paper writes a plain KL.
"""
from __future__ import annotations

import torch

from ..losses import kd_reference, soft
from .base import Method, StepOutput


class RSLAD(Method):
    name = "rslad"
    teachers = ("robust",)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.attack = self.pgd(loss="kl", start="normal", clamp_start=False)

    def compute(self, x, y, progress):
        robust = self.frozen["robust"]
        with torch.no_grad(), self.autocast():
            t_probs = soft(robust(x))
        x_adv = self.adversarial(x, y, target_probs=t_probs)
        self.student.train()
        with self.autocast():
            logits_adv = self.student(x_adv)
            logits_nat = self.student(x)
        kl_adv = kd_reference(t_probs, logits_adv)
        kl_nat = kd_reference(t_probs, logits_nat)
        loss = 5.0 / 6.0 * kl_adv + 1.0 / 6.0 * kl_nat
        return StepOutput(loss, {"loss_kd_adv": kl_adv.detach(), "loss_kd_nat": kl_nat.detach()},
                          logits_adv)
