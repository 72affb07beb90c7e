"""Loss pieces shared by the methods: the KD terms, entropy, the push-loss scale.

Each method uses the KL scale of its official code (the papers write a plain KL and leave
the reduction to the code). Three conventions, each written once:

* ``kd_reference``: ``kl(p, q) = sum_c p_c (log(p_c + 1e-5) - log q_c)`` averaged over batch
  *and* classes (``batchmean / C``), no ``T^2`` factor. CIARD, MTARD / B-MTARD and RSLAD
  (``torch.mean`` of the element-wise ``kl_loss`` in their training scripts);
* ``kd_mean``: ``nn.KLDivLoss()`` with its default element-wise mean, also ``batchmean / C``
  but with the exact ``log p`` (no ``+1e-5``). ARD (``goldblum/AdversariallyRobustDistillation``,
  ``main.py``), which multiplies it by ``T^2``, and KDIGA (its author's fork of that script);
* ``kd_batchmean``: ``KL(p || q)`` summed over classes, averaged over the batch. TRADES
  (``nn.KLDivLoss(size_average=False)`` divided by the batch size), the only method here at
  full KL scale: C times the others (10x on CIFAR-10, 100x on CIFAR-100).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-5


def kd_reference(teacher_probs: torch.Tensor, student_logits: torch.Tensor,
                 mask: torch.Tensor | None = None, count: torch.Tensor | None = None) -> torch.Tensor:
    """Reference-convention KL(teacher || student), mean over (masked) samples and classes.

    With ``mask`` (bool, N), only masked samples count; an empty mask gives exactly 0. The
    masked mean is computed without reading the mask on the host (no device sync).
    ``count`` replaces the local number of masked samples as the divisor: data-parallel
    training passes the mean count over ranks, so that the rank-averaged loss is the masked
    mean over the whole global batch.
    """
    p = teacher_probs.float()
    log_q = F.log_softmax(student_logits.float(), dim=1)
    per_sample = (p * (torch.log(p + _EPS) - log_q)).sum(dim=1)
    num_classes = p.shape[1]
    if mask is None:
        return per_sample.mean() / num_classes
    m = mask.to(per_sample.dtype)
    denominator = m.sum() if count is None else count
    return (per_sample * m).sum() / (denominator.clamp_min(1.0) * num_classes)


def kd_mean(teacher_probs: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) averaged over batch and classes: ``nn.KLDivLoss()``'s default."""
    p = teacher_probs.float()
    log_q = F.log_softmax(student_logits.float(), dim=1)
    return F.kl_div(log_q, p, reduction="none").mean()


def kd_batchmean(teacher_probs: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) summed over classes, averaged over the batch."""
    p = teacher_probs.float()
    log_q = F.log_softmax(student_logits.float(), dim=1)
    return F.kl_div(log_q, p, reduction="batchmean")


def kl_per_sample(teacher_probs: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of each sample (summed over classes; shape N), exact ``log p``.

    ``nn.KLDivLoss(reduction='none')(...).sum(dim=1)``: DGAD masks and re-normalises these.
    The gradient also flows into ``teacher_probs`` when it carries one.
    """
    log_q = F.log_softmax(student_logits.float(), dim=1)
    return F.kl_div(log_q, teacher_probs.float(), reduction="none").sum(dim=1)


def soft(logits: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Softmax of logits / temperature, in fp32, detached (teacher targets carry no gradient)."""
    return F.softmax(logits.detach().float() / temperature, dim=1)


def neg_entropy(probs: torch.Tensor) -> torch.Tensor:
    """mean(p log(p + 1e-5)) over batch and classes: the 'H' the entropy balance compares.

    ``+1e-5`` inside the log, as the official B-MTARD and CIARD ``entropy_value``.
    """
    return (probs * torch.log(probs + _EPS)).mean()


def power_of_ten_scale(l_adv: torch.Tensor, l_nat: torch.Tensor, l_push: torch.Tensor) -> torch.Tensor:
    """s = 10 ** (min(floor(log10 L_adv), floor(log10 L_nat)) - floor(log10 L_push)).

    Brings the push loss to the order of magnitude of the KD terms; returned detached, so it
    acts as a constant. Zero when the push loss is zero (no fooled samples) or not finite.
    """
    a, n, p = (t.detach().float() for t in (l_adv, l_nat, l_push))
    ok = (p > 0) & torch.isfinite(p) & (a > 0) & (n > 0)
    safe = lambda t: torch.where(ok, t, torch.ones_like(t))  # noqa: E731 - avoid log10(0)
    exponent = torch.minimum(torch.floor(torch.log10(safe(a))), torch.floor(torch.log10(safe(n)))) \
        - torch.floor(torch.log10(safe(p)))
    return torch.where(ok, torch.pow(10.0, exponent), torch.zeros_like(p))
