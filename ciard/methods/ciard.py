"""CIARD: dual-teacher distillation with a contrastive push loss and iterative teacher training.

One step, in the reference order (see ../shared/CIARD-method.md):
  1. S(x) in train mode, then x' = PGD on the student's CE (from x + 0.001 N(0,1), not
     clamped before the first step; student in eval mode). The official ``CIARD.py`` runs
     S(x) before the attack, so the attacked student's BatchNorm already holds this batch's
     statistics; B-MTARD's script attacks first, then runs S(x'), then S(x)
     (``clean_pass_first``);
  2. S(x') in train mode; N on [x; x'] in one frozen pass; R(x') (train-mode BN as in
     the reference while R keeps training);
  3. L = w_adv KL(R(x')/tau_adv || S(x')) + w_nat KL(N(x)/tau_nat || S(x))
         - lambda * s * KL(N(x') || S(x')/T_push) over the samples where N(x') is wrong;
  4. (trainer) student SGD step;
  5. ITT: one SGD step on R with CE(R(x'), y), lr from its warm-up + cosine-exp schedule;
  6. entropy-balanced temperature update (from this step's targets; the next step uses it);
  7. optional normalised-loss KD weights, moved with this step's losses *before* they weight
     them (the order of the official B-MTARD and CIARD code).

Reference defects fixed here: the eta decay fires once per milestone (not every batch), R is
not run on clean inputs (the result was unused), selection uses a held-out split.
MTARD/B-MTARD is this class with push and ITT off and adaptive weights on (``mtard.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_reference, neg_entropy, power_of_ten_scale, soft
from ..schedules import eta_decay, itt_lr
from .base import Method, StepOutput


class CIARD(Method):
    name = "ciard"
    teachers = ("clean", "robust")
    #: the student's clean pass comes before the attack (CIARD.py) or after S(x') (B-MTARD)
    clean_pass_first = True

    @property
    def trains_teacher(self) -> bool:
        return self.itt_on   # ITT fine-tunes the robust teacher

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        me = self.cfg.method
        self.attack = self.pgd(loss="ce", start="normal", clamp_start=False)
        self.clean = self.frozen["clean"]              # frozen: the folded view
        self.robust = self.teacher_models["robust"]    # keeps training with ITT: the live model
        self.itt_on = me.itt
        self.robust_view = self.robust if me.itt else self.frozen["robust"]
        self.robust_optim = None
        if self.itt_on:
            # R keeps training: gradients on, train-mode BN unless configured otherwise
            for p in self.robust.parameters():
                p.requires_grad_(True)
            self.robust_optim = torch.optim.SGD(self.robust.parameters(), lr=0.0,
                                                momentum=me.itt_momentum,
                                                weight_decay=me.itt_weight_decay)
        device = next(self.student.parameters()).device
        self.tau_adv = torch.ones((), device=device)
        self.tau_nat = torch.ones((), device=device)
        w0 = 0.5 if me.adaptive_weights else 1.0
        self.w_adv = torch.full((), w0, device=device)
        self.w_nat = torch.full((), w0, device=device)
        self.loss_init: torch.Tensor | None = None  # L_k at the first step (adaptive weights)
        self._r_logits: torch.Tensor | None = None
        self._probs: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- step ---------------------------------------------------------------------
    def compute(self, x, y, progress):
        me = self.cfg.method
        s_nat = None
        self.student.train()
        if self.clean_pass_first:
            with self.autocast():
                s_nat = self.student(x)
        x_adv = self.adversarial(x, y)

        self.student.train()
        with self.autocast():
            s_adv = self.student(x_adv)
            if s_nat is None:
                s_nat = self.student(x)
            with torch.no_grad():
                n_nat, n_adv = self.clean(torch.cat([x, x_adv])).float().chunk(2)
            lr_r = itt_lr(me.itt_lr, progress, me.itt_warmup) if self.itt_on else 0.0
            self.robust.train(self.itt_on and me.robust_teacher_train_mode)
            if lr_r > 0.0:
                r_adv = self.robust(x_adv)
                self._r_logits = r_adv
            else:
                with torch.no_grad():
                    r_adv = self.robust_view(x_adv)
                self._r_logits = None
        self._itt_lr = lr_r

        p_adv = soft(r_adv, self.tau_adv)
        p_nat = soft(n_nat, self.tau_nat)
        l_adv = kd_reference(p_adv, s_adv)
        l_nat = kd_reference(p_nat, s_nat)

        fooled = n_adv.argmax(dim=1) != y
        # data-parallel: divide by the mean count over ranks -> the global batch's masked mean
        count = self.dist.mean(fooled.float().sum()) if self.dist.enabled else None
        l_push = kd_reference(soft(n_adv), s_adv.float() / me.push_temp, mask=fooled, count=count)
        if me.push_autoscale:   # from rank-averaged losses: the same s on every rank
            scale = power_of_ten_scale(*self.dist.mean(torch.stack([l_adv, l_nat, l_push]).detach().float()))
        else:
            scale = torch.ones((), device=l_push.device)
        if me.adaptive_weights:   # official order: this step's losses move the weights, then
            kd = self.dist.mean(torch.stack([l_adv, l_nat]).detach())   # the new weights form its loss
            self.update_weights(kd[0], kd[1], me.weight_lr * eta_decay(progress))
        loss = self.w_adv * l_adv + self.w_nat * l_nat - me.push_weight * scale * l_push

        self._probs = (p_adv, p_nat)
        metrics = {
            "loss_adv": l_adv.detach(), "loss_nat": l_nat.detach(), "loss_push": l_push.detach(),
            "push_scale": scale, "push_fraction": fooled.float().mean(),
            "tau_adv": self.tau_adv.clone(), "tau_nat": self.tau_nat.clone(),
            "w_adv": self.w_adv.clone(), "w_nat": self.w_nat.clone(), "teacher_lr": lr_r,
        }
        return StepOutput(loss, metrics, s_adv)

    def after_step(self, out, y, progress):
        me = self.cfg.method
        extra: dict = {}
        # ITT: one SGD step of R on the student's adversarial examples
        if self._r_logits is not None:
            for group in self.robust_optim.param_groups:
                group["lr"] = self._itt_lr
            loss_r = F.cross_entropy(self._r_logits.float(), y)
            self.robust_optim.zero_grad(set_to_none=True)
            loss_r.backward()
            self.dist.average_gradients(self.robust.parameters())   # R stays identical on all ranks
            self.robust_optim.step()
            self.dist.sync_buffers(self.robust)
            extra["loss_teacher"] = loss_r.detach()
            self._r_logits = None
        if me.adaptive_temp and self._probs is not None:
            self.update_temperatures(*self._probs, me.temp_lr * eta_decay(progress))
        self._probs = None
        return extra

    # -- the B-MTARD balance rules ---------------------------------------------------
    def update_temperatures(self, p_adv: torch.Tensor, p_nat: torch.Tensor, eta: float) -> None:
        """tau_adv -= eta sign(H_adv/H_nat - 1); tau_nat -= eta sign(H_nat/H_adv - 1); clip."""
        me = self.cfg.method
        h_adv, h_nat = self.dist.mean(torch.stack([neg_entropy(p_adv), neg_entropy(p_nat)]))
        self.tau_adv = (self.tau_adv - eta * torch.sign(h_adv / h_nat - 1)).clamp(me.temp_min, me.temp_max)
        self.tau_nat = (self.tau_nat - eta * torch.sign(h_nat / h_adv - 1)).clamp(me.temp_min, me.temp_max)

    def update_weights(self, l_adv: torch.Tensor, l_nat: torch.Tensor, eta: float) -> None:
        """Normalised-loss balance: w_k <- w_k - eta (w_k - r_k / sum r), clip at 0, sum to 1."""
        losses = torch.stack([l_adv, l_nat]).float()
        if self.loss_init is None:
            self.loss_init = losses.clone()
        rel = losses / self.loss_init
        r = rel / rel.mean()
        w = torch.stack([self.w_adv, self.w_nat])
        w = (w - eta * (w - r / r.sum())).clamp_min(0.0)
        w = w / w.sum().clamp_min(1e-12)
        self.w_adv, self.w_nat = w[0].clone(), w[1].clone()

    # -- state ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"tau_adv": self.tau_adv, "tau_nat": self.tau_nat, "w_adv": self.w_adv,
                 "w_nat": self.w_nat, "loss_init": self.loss_init,
                 "robust": self.robust.state_dict()}
        if self.robust_optim is not None:
            state["robust_optim"] = self.robust_optim.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for key in ("tau_adv", "tau_nat", "w_adv", "w_nat"):
            setattr(self, key, state[key].to(self.tau_adv.device))
        self.loss_init = state["loss_init"]
        self.robust.load_state_dict(state["robust"])
        if self.robust_optim is not None and "robust_optim" in state:
            self.robust_optim.load_state_dict(state["robust_optim"])
