"""AdaAD (Huang et al., CVPR 2023): alpha KL(T(x') || S(x')) + (1 - alpha) KL(T(x) || S(x)).

"Boosting Accuracy and Robustness of Student Models via Adaptive Adversarial Distillation".
As the official code (``boyellow/AdaAD``, ``main.py``, method ``AdaAD``, with
``adaad_inner_loss`` of ``AT_helper.py``) does it:

* the inner maximisation is adaptive: x' maximises KL(T(x') || S(x')), the teacher evaluated
  at the iterate, with the gradient through both networks (:class:`ciard.attacks.TeacherKLPGD`),
  from the unclamped x + 0.001 N(0, 1), student and teacher in eval mode;
* then, in train mode, the student runs on x and then on x' (this order: both update the
  BatchNorm running statistics); the frozen teacher runs on x' (and on x) without gradient;
* each KL is ``nn.KLDivLoss()`` with its default element-wise mean on CIFAR-10
  (``batchmean / C``, the scale of RSLAD's and CIARD's terms) but ``sum / N`` (``batchmean``)
  on CIFAR-100: the script switches the reduction on the dataset, and so does this class
  (``--dataset cifar100``; every other dataset gets the CIFAR-10 form);
* alpha (``--adaad-alpha``) is 1 by default, as the script's ``--AdaAD_alpha``: only the
  adversarial term. The teacher's clean pass, which then contributes nothing, is skipped.

The official script's argparse defaults search a larger ball (``--epsilon 16 --step_size 4``,
10 steps), while its README's AdaAD command passes 8/255 and 2/255 and gives 16/4 as the
larger-radius variant (the paper's Sections 3.4 and 4.2); the harness uses its own
``--eps`` / ``--pgd-step-size`` (8/255, 2/255 by default), so pass 16/255 and 4/255 to match
the argparse defaults.
"""
from __future__ import annotations

import torch

from ..attacks import TeacherKLPGD
from ..losses import kd_batchmean, kd_mean, soft
from .base import Method, StepOutput


class AdaAD(Method):
    name = "adaad"
    teachers = ("robust",)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.teacher = self.frozen["robust"]
        a = self.cfg.attack
        self.attack = TeacherKLPGD(self.teacher, eps=a.eps, steps=a.pgd_steps,
                                   step_size=a.pgd_step_size, autocast=self.autocast,
                                   bounds=self.bounds)
        # the official script's CIFAR-100 branch sums over classes; CIFAR-10's averages over them
        self.kl = kd_batchmean if self.cfg.data.dataset == "cifar100" else kd_mean

    def passes(self, x: torch.Tensor, y: torch.Tensor, teacher_on_clean: bool = True):
        """x' by the adaptive attack, then S(x), S(x') in train mode and the teacher on x', x.

        Returns (S(x), S(x'), T(x) or None, T(x')); DGAD makes the same passes.
        """
        x_adv = self.adversarial(x, y)
        self.student.train()
        with self.autocast():
            s_nat = self.student(x)
            s_adv = self.student(x_adv)
            with torch.no_grad():
                t_adv = self.teacher(x_adv).float()
                t_nat = self.teacher(x).float() if teacher_on_clean else None
        return s_nat, s_adv, t_nat, t_adv

    def compute(self, x, y, progress):
        alpha = self.cfg.method.adaad_alpha
        logits_nat, logits_adv, t_nat, t_adv = self.passes(x, y, teacher_on_clean=alpha < 1.0)
        kl_adv = self.kl(soft(t_adv), logits_adv)
        loss = alpha * kl_adv
        metrics = {"loss_kd_adv": kl_adv.detach()}
        if t_nat is not None:
            kl_nat = self.kl(soft(t_nat), logits_nat)
            loss = loss + (1.0 - alpha) * kl_nat
            metrics["loss_kd_nat"] = kl_nat.detach()
        return StepOutput(loss, metrics, logits_adv)
