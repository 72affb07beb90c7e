"""A CIARD step written the way the authors' published implementation is structured.

It exists to be measured against (``python -m ciard bench``) and to check that the fast step
computes the same mathematics (``tests/test_bench.py``). Everything here mirrors the
published code's structure on purpose, waste included:

* fp32, contiguous NCHW tensors, no autocast;
* the student's clean pass (train mode) comes before the attack, whose random start is not
  clamped to [0, 1] before its first step;
* the attack runs the student with its parameters still requiring gradients and with a
  mean-reduced loss; every step and every projection is a separate operation;
* separate forward passes for each teacher on each input, and the robust teacher is also
  run on clean inputs, whose result is never used;
* the frozen clean teacher runs without ``torch.no_grad``, so autograd records its graph, and
  teacher outputs are not detached, so the student's backward also fills teacher gradients;
* the push-loss scale and the temperature updates read losses back with ``.item()``;
* ITT runs a second forward pass of the robust teacher for its own update.
The losses, masks, schedules and update rules are those of :mod:`ciard.methods.ciard`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .schedules import itt_lr


def _kl(p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The reference KL: sum p (log(p + 1e-5) - log q), mean over batch and classes."""
    return (p * (torch.log(p + 1e-5) - F.log_softmax(logits, dim=1))).mean()


def _sign(v: float) -> float:
    return float((v > 0) - (v < 0))


@dataclass
class ReferenceState:
    tau_adv: float = 1.0
    tau_nat: float = 1.0


class ReferenceCIARD:
    """Student, clean teacher, robust teacher and their optimisers, stepped the reference way."""

    def __init__(self, cfg: Config, student: nn.Module, clean: nn.Module, robust: nn.Module) -> None:
        self.cfg, self.student, self.clean, self.robust = cfg, student, clean, robust
        o, me = cfg.optim, cfg.method
        self.opt = torch.optim.SGD(student.parameters(), lr=o.lr, momentum=o.momentum,
                                   weight_decay=o.weight_decay)
        self.opt_t = torch.optim.SGD(robust.parameters(), lr=0.0, momentum=me.itt_momentum,
                                     weight_decay=me.itt_weight_decay)
        self.state = ReferenceState()
        self.clean.eval()
        for m in (clean, robust):
            for p in m.parameters():
                p.requires_grad_(True)

    def attack(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = self.cfg.attack
        self.student.eval()
        x_adv = x.detach() + 0.001 * torch.randn(x.shape, device=x.device, dtype=x.dtype)
        for _ in range(a.pgd_steps):
            x_adv.requires_grad_()
            with torch.enable_grad():
                loss = F.cross_entropy(self.student(x_adv), y)
            grad = torch.autograd.grad(loss, [x_adv])[0]
            x_adv = x_adv.detach() + a.pgd_step_size * torch.sign(grad.detach())
            x_adv = torch.min(torch.max(x_adv, x - a.eps), x + a.eps)
            x_adv = torch.clamp(x_adv, 0.0, 1.0)
        return x_adv.detach()

    def step(self, x: torch.Tensor, y: torch.Tensor, progress: float, lr: float) -> dict[str, float]:
        me = self.cfg.method
        self.student.train()
        nat_logits = self.student(x)                  # before the attack, as the published code
        x_adv = self.attack(x, y)
        self.student.train()
        adv_logits = self.student(x_adv)
        self.robust.train(me.robust_teacher_train_mode)
        tea_adv_logits = self.robust(x_adv)
        _unused = self.robust(x)                      # the reference's wasted forward pass
        tea_nat_logits = self.clean(x)
        tea_nat_adv_logits = self.clean(x_adv)

        s = self.state
        p_adv = F.softmax(tea_adv_logits / s.tau_adv, dim=1)
        p_nat = F.softmax(tea_nat_logits / s.tau_nat, dim=1)
        l_adv = _kl(p_adv, adv_logits)
        l_nat = _kl(p_nat, nat_logits)
        fooled = tea_nat_adv_logits.argmax(1) != y
        if fooled.sum().item() > 0:
            p_push = F.softmax(tea_nat_adv_logits[fooled], dim=1)
            l_push = _kl(p_push, adv_logits[fooled] / me.push_temp)
            scale = 10.0 ** (min(math.floor(math.log10(l_adv.item())), math.floor(math.log10(l_nat.item())))
                             - math.floor(math.log10(l_push.item())))
        else:
            l_push, scale = torch.zeros((), device=x.device), 0.0
        loss = l_adv + l_nat - me.push_weight * scale * l_push

        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

        # ITT: a fresh forward pass of the robust teacher on the student's adversarial examples
        lr_t = itt_lr(me.itt_lr, progress, me.itt_warmup) if me.itt else 0.0
        if lr_t > 0:
            for g in self.opt_t.param_groups:
                g["lr"] = lr_t
            out = self.robust(x_adv)
            loss_t = F.cross_entropy(out, y)
            self.opt_t.zero_grad()
            loss_t.backward()
            self.opt_t.step()

        # entropy balance, read back on the host
        h_adv = (p_adv * torch.log(p_adv + 1e-5)).mean().item()
        h_nat = (p_nat * torch.log(p_nat + 1e-5)).mean().item()
        eta = me.temp_lr
        if me.adaptive_temp:
            s.tau_adv = min(max(s.tau_adv - eta * _sign(h_adv / h_nat - 1), me.temp_min), me.temp_max)
            s.tau_nat = min(max(s.tau_nat - eta * _sign(h_nat / h_adv - 1), me.temp_min), me.temp_max)
        return {"loss": loss.item(), "loss_adv": l_adv.item(), "loss_nat": l_nat.item(),
                "loss_push": l_push.item(), "push_scale": scale}
