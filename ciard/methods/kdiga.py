"""KDIGA (Shao et al., 2021): knowledge distillation with input gradient alignment.

"How and When Adversarial Robustness Transfers in Knowledge Distillation?" (arXiv 2110.12072).
The paper links no repository, but its first author's code is public:
``RulinShao/AdversariallyRobustDistillation`` (a fork of ARD's repository), branch ``master``,
``main.py``, ``--distill_method kdiga``, as of its last change to ``main.py`` (e77a13d,
2021-10-22, the day arXiv v1 appeared; master's head is 12e774f). This follows that code. The
method's first version there (ac94b4b and 772defd, 2021-09-28) differed: it detached the
student's input gradient (``.clone().detach()`` after ``create_graph=True``), so the alignment
term sent no gradient to the student, and it fixed gamma at 1000 (``gama = 1000 / N``):

    L = alpha tau^2 KLDivLoss()(log_softmax(S(x)/tau), softmax(T(x)/tau))
        + (1 - alpha) CE(S(x), y)
        + gamma / N * || grad_x CE(S(x), y) - grad_x CE(T(x), y) ||_2

on clean inputs only (KDIGA distils a robust teacher without adversarial examples; the
alignment of the two input gradients is what carries the robustness over), where

* the KL is ``nn.KLDivLoss()``'s element-wise mean (over batch *and* classes: 1/C of the
  usual batch-mean KL, like ARD's and RSLAD's official losses);
* each input gradient is that of the batch's *mean* CE (``nn.CrossEntropyLoss()``), so a
  sample's gradient carries a factor 1/N, and the norm is one L2 norm over the whole batch's
  gradient difference, then divided by N again (``gama = args.gamma / inputs.shape[0]``);
* the student runs twice in train mode, as in the script: once for the KD and CE terms, once
  (with ``create_graph``, double backpropagation) for its input gradient, so its BatchNorm
  statistics move twice per step; the frozen teacher runs in eval mode, and its gradient is a
  constant (run once here: in eval mode its two passes in the script are the same);
* N is the batch of one process: under ``torchrun`` each rank's alignment term uses its own
  N, so at the same global batch it weighs K^1.5 times more on K ranks (the CE and KL means
  do not change); compare gammas at the same per-process batch;
* alpha 0.5, tau 1 and gamma 0.5 are the script's defaults (``--alpha 0.5 --temp 1.0
  --gamma 0.5``). The paper's per-experiment gamma values were not available here; the zoo
  chooses gamma on the validation split (``tools/choose_kdiga_gamma.py``).

Earlier versions of this file, written before that code was found, took per-sample gradients of
the summed CE and averaged their norms with a batch-mean KL: at the same gamma that term was
~10^3 times the script's at batch 128, and the KL 10 times (C) the script's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_mean, soft
from .base import Method, StepOutput


def input_gradient(model, x: torch.Tensor, y: torch.Tensor, autocast, create_graph: bool):
    """grad_x of the batch's mean CE (``nn.CrossEntropyLoss()``, as the script) and the logits."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        with autocast():
            logits = model(x)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits.float(), y), x, create_graph=create_graph)
    return grad, logits


class KDIGA(Method):
    name = "kdiga"
    teachers = ("robust",)
    uses_attack = False          # clean inputs only: the input-gradient term stands in for an attack

    def compute(self, x, y, progress):
        me = self.cfg.method
        teacher = self.frozen["robust"]
        g_teacher, t_logits = input_gradient(teacher, x, y, self.autocast, create_graph=False)
        self.student.train()
        with self.autocast():
            logits = self.student(x)                       # the script's basic_net(inputs)
        g_student, _ = input_gradient(self.student, x, y, self.autocast, create_graph=True)
        ce = F.cross_entropy(logits.float(), y)
        kd = kd_mean(soft(t_logits, me.kdiga_temp), logits.float() / me.kdiga_temp)
        align = (g_student.float() - g_teacher.detach().float()).norm(p=2) / x.shape[0]
        loss = me.kdiga_alpha * me.kdiga_temp ** 2 * kd + (1.0 - me.kdiga_alpha) * ce \
            + me.kdiga_gamma * align
        return StepOutput(loss, {"loss_ce": ce.detach(), "loss_kd": kd.detach(),
                                 "loss_align": align.detach()}, logits)
