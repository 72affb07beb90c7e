"""Adversarial training on the student's own adversarial examples.

PGD-AT (Madry et al., 2018): CE(S(x'), y) with x' = PGD on S's cross-entropy from a uniform
start clamped to [0, 1] (``MadryLab/cifar10_challenge``, ``pgd_attack.py``).
FGSM-AT with random start (Wong et al., 2020, "Fast is better than free"): one step of
``fgsm_alpha * eps`` from a uniform start (``locuslab/fast_adversarial``,
``CIFAR10/train_fgsm.py``); a cheap way to get a robust teacher.

Both official codes craft x' with the model in **train mode** (Madry's TensorFlow model is
built with ``mode='train'``; Wong's loop runs under ``model.train()``): BatchNorm uses the
batch's statistics and updates its running statistics at every attack step. So do these
attacks, on the live student (not on the folded eval view).
"""
from __future__ import annotations

import torch.nn.functional as F

from ..attacks import PGD
from .base import Method, StepOutput


class PGDAT(Method):
    name = "pgd_at"

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.attack = self.make_attack()

    def make_attack(self) -> PGD:
        return self.pgd(loss="ce", start="uniform", train_mode=True)

    def compute(self, x, y, progress):
        x_adv = self.adversarial(x, y)
        self.student.train()
        with self.autocast():
            logits = self.student(x_adv)
        loss = F.cross_entropy(logits.float(), y)
        return StepOutput(loss, {"loss_ce_adv": loss.detach()}, logits)


class FGSMAT(PGDAT):
    name = "fgsm_at"

    def make_attack(self) -> PGD:
        eps = self.cfg.attack.eps
        return PGD(eps=eps, steps=1, step_size=self.cfg.method.fgsm_alpha * eps, loss="ce",
                   start="uniform", autocast=self.autocast, train_mode=True, bounds=self.bounds)
