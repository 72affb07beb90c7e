"""DGAD (Park et al., ECCV 2024): "Dynamic Guidance Adversarial Distillation with Enhanced
Teacher Knowledge".

As the official code (``kunsaram01/DGAD``, ``main.py``, method ``DGAD``; attack
``adaad_inner_loss`` of ``AT_helper.py``, the same as AdaAD's) does it:

* x' maximises KL(T(x') || S(x')) through both networks, from the unclamped
  x + 0.001 N(0, 1), student and teacher in eval mode (:class:`ciard.attacks.TeacherKLPGD`);
* in train mode the student runs on x, then on x'; the frozen teacher on x and x', no gradient;
* misclassification-aware partitioning: a sample whose clean input the teacher gets wrong
  (argmax T(x) != y) is distilled on its clean input only, every other sample on its
  adversarial input only;
* error-corrective label swapping, on the teacher's *logits*: where T(x) is wrong, its
  true-class logit and its top logit trade places; where T(x') ranks another class above the
  true one, the true-class logit and the largest other logit trade places;
* the KLs are summed over classes per sample (``KLDivLoss(reduction='none').sum(dim=1)``), so
  with n clean-distilled samples in a batch of N:
      L = n/N * [sum_clean KL / (n + 1e-10)] + (N - n)/N * [sum_adv KL / (N - n)]
          + beta * MSE(softmax S(x'), softmax S(x))
  the last term (predictive-consistency regularisation, the script's ALP loss, on by default,
  ``--ALP_beta 1``) is ``nn.MSELoss()``, averaged over batch and classes, with gradient
  through both student outputs.

Where this differs from the official script, and why:
* the script divides by its configured batch size ``args.bs``; this uses the batch's own
  size (the same for every full batch);
* when the teacher gets every clean input of a batch wrong, the script's adversarial term is
  ``1 / (len(adv_inputs) - num_lambda)`` with a float 0 below: the script stops with
  ZeroDivisionError; here that term is 0 (its weight (N - n)/N is 0 then anyway);
* the script's MobileNetV2 branch computes ``0.5 * (n/N * L_clean + (N - n)/N) * L_adv``
  (a parenthesis that multiplies the clean term into the adversarial one); it is keyed on the
  script's model name and is not reproduced: every student here gets the formula above, the
  one behind the paper's ResNet-18 figures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kl_per_sample
from .adaad import AdaAD
from .base import StepOutput


def swap_true_and_top(logits: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
                      top: torch.Tensor, top_value: torch.Tensor) -> torch.Tensor:
    """Where ``rows``: the true class's logit and the logit at ``top`` trade places."""
    true_value = logits.gather(1, y[:, None]).squeeze(1)
    at_true = F.one_hot(y, logits.shape[1]).bool() & rows[:, None]
    at_top = F.one_hot(top, logits.shape[1]).bool() & rows[:, None]
    swapped = torch.where(at_top, true_value[:, None], logits)
    return torch.where(at_true, top_value[:, None], swapped)


class DGAD(AdaAD):
    """AdaAD's attack and passes (:meth:`AdaAD.passes`), DGAD's loss."""

    name = "dgad"

    def compute(self, x, y, progress):
        s_nat, s_adv, t_nat, t_adv = self.passes(x, y)
        # partition: the teacher's clean mistakes are distilled clean, the rest adversarially
        t_max, t_top = t_nat.max(dim=1)
        wrong = t_top != y
        lam = wrong.float()
        n, size = lam.sum(), float(len(y))
        t_nat = swap_true_and_top(t_nat, y, wrong, t_top, t_max)
        # on x': the largest logit other than the true class's, and whether it beats it
        other_max, other_top = t_adv.scatter(1, y[:, None], float("-inf")).max(dim=1)
        beaten = t_adv.gather(1, y[:, None]).squeeze(1) - other_max < 0
        t_adv = swap_true_and_top(t_adv, y, beaten, other_top, other_max)

        loss_clean = (lam * kl_per_sample(F.softmax(t_nat, dim=1), s_nat)).sum() / (n + 1e-10)
        loss_adv = ((1 - lam) * kl_per_sample(F.softmax(t_adv, dim=1), s_adv)).sum() \
            / (size - n).clamp_min(1.0)
        loss_pcr = F.mse_loss(F.softmax(s_adv.float(), dim=1), F.softmax(s_nat.float(), dim=1))
        loss = n / size * loss_clean + (size - n) / size * loss_adv \
            + self.cfg.method.dgad_beta * loss_pcr
        metrics = {"loss_kd_nat": loss_clean.detach(), "loss_kd_adv": loss_adv.detach(),
                   "loss_pcr": loss_pcr.detach(), "teacher_wrong_fraction": lam.mean(),
                   "swapped_adv_fraction": beaten.float().mean()}
        return StepOutput(loss, metrics, s_adv)
