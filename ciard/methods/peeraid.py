"""PeerAiD (Jung et al., CVPR 2024): "Improving Adversarial Distillation from a Specialized
Peer Tutor". No pretrained teacher: a peer network, trained jointly from random weights on
the *student's* adversarial examples, is the student's tutor.

As the official code (``jaewonalive/PeerAiD``, ``main.py``, ``train_kd``; attack
``LinfPeerAttack`` of ``attack_function.py``) does it, one step:

1. P(x) with the peer in eval mode, no gradient; x' maximises KL(P(x) || S(x')) by PGD on the
   student in eval mode, from the unclamped x + 0.001 N(0, 1) (RSLAD's attack, the peer's clean
   prediction as the target);
2. in train mode: P(x'), S(x') (the peer loss's target), S(x') again (the student loss's
   input: the same logits, a second update of the BatchNorm statistics), S(x);
3. peer loss     gamma1 CE(P(x'), y) + gamma2 Tp^2 KL(S(x')/Tp || P(x')/Tp)
   student loss  lambda1 CE(S(x'), y) + lambda2 T^2 KL(P(x')/T || S(x')/T)
                 + lambda3 T^2 KL(S(x)/T || S(x')/T)
   each KL ``nn.KLDivLoss()`` (element-wise mean: ``batchmean / C``). In the student loss
   P(x') is detached; S(x) is not (the gradient flows through both student passes);
4. one backward of (peer loss + student loss), then one SGD step of each network.
   **The code differs from the paper here:** the peer loss's target S(x') is not detached,
   so the student also receives the gradient of gamma2 Tp^2 KL(S(x') || P(x')). Followed.

Defaults are the official CIFAR-10 ResNet-18 command (T 5, lambda 0/1/1, gamma 1/0.1,
Tp 1); the official CIFAR-100 scripts use ``--gamma2 1`` (not switched by dataset here: pass
``--peeraid-gamma2 1``). The peer has the student's architecture (the paper's pairs: ResNet-18/ResNet-18,
WRN-34-10/WRN-34-10) and uses the student's optimiser settings and learning-rate schedule
(the official config gives both networks lr 0.1, the same decay epochs and weight decay).
**Not reproduced:** the published figures evaluate a stochastic-weight-averaged student
(``--swa_s``, from the first lr decay on, BatchNorm statistics recomputed over the training
set each epoch); this harness evaluates the student itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_mean
from ..models import build_model
from ..schedules import student_lr
from .base import Method, StepOutput


class PeerAiD(Method):
    name = "peeraid"

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        o = self.cfg.optim
        self.attack = self.pgd(loss="kl", start="normal", clamp_start=False)
        ref = next(self.student.parameters())
        # the student's architecture and input normalisation (its dataset's mean and std)
        norm = self.student.normalize
        self.peer = build_model(self.student.arch, num_classes=self.student.num_classes,
                                mean=norm.mean.flatten().tolist(), std=norm.std.flatten().tolist()).to(ref.device)
        conv = next((p for p in self.student.parameters() if p.dim() == 4), None)
        if conv is not None and not conv.is_contiguous() and conv.is_contiguous(memory_format=torch.channels_last):
            self.peer = self.peer.to(memory_format=torch.channels_last)
        self.dist.broadcast_module(self.peer)   # one peer on every rank
        self.peer_optim = torch.optim.SGD(self.peer.parameters(), lr=o.lr, momentum=o.momentum,
                                          nesterov=o.nesterov and o.momentum > 0,
                                          weight_decay=o.weight_decay)

    def compute(self, x, y, progress):
        me = self.cfg.method
        t, tp = me.peeraid_temp, me.peeraid_peer_temp
        self.peer_optim.zero_grad(set_to_none=True)
        self.peer.eval()
        with torch.no_grad(), self.autocast():
            peer_probs = F.softmax(self.peer(x).float(), dim=1)
        x_adv = self.adversarial(x, y, target_probs=peer_probs)
        self.peer.train()
        self.student.train()
        with self.autocast():
            p_adv = self.peer(x_adv)
            s_target = self.student(x_adv)
            s_adv = self.student(x_adv)
            s_nat = self.student(x)
        p_adv, s_target, s_adv, s_nat = (z.float() for z in (p_adv, s_target, s_adv, s_nat))
        # the peer: CE, and KL(S(x') || P(x')) whose target S(x') keeps its gradient (as the code)
        peer_ce = F.cross_entropy(p_adv, y)
        peer_kl = kd_mean(F.softmax(s_target / tp, dim=1), p_adv / tp)
        loss_peer = me.peeraid_gamma1 * peer_ce + me.peeraid_gamma2 * tp * tp * peer_kl
        # the student: CE, KL(P(x') || S(x')) with P detached, KL(S(x) || S(x')) through both
        ce = F.cross_entropy(s_adv, y)
        kl_peer = kd_mean(F.softmax(p_adv.detach() / t, dim=1), s_adv / t)
        kl_nat = kd_mean(F.softmax(s_nat / t, dim=1), s_adv / t)
        loss_student = me.peeraid_lambda1 * ce + me.peeraid_lambda2 * t * t * kl_peer \
            + me.peeraid_lambda3 * t * t * kl_nat
        metrics = {"loss_student": loss_student.detach(), "loss_peer": loss_peer.detach(),
                   "loss_kd_peer": kl_peer.detach(), "loss_kd_nat": kl_nat.detach(),
                   "peer_adv_acc": (p_adv.argmax(dim=1) == y).float().mean()}
        return StepOutput(loss_peer + loss_student, metrics, s_adv)

    def after_step(self, out, y, progress):
        # the trainer's backward filled the peer's gradients too: its SGD step, at the student's lr
        o = self.cfg.optim
        for group in self.peer_optim.param_groups:
            group["lr"] = student_lr(o.lr, progress, o.lr_schedule)
        self.dist.average_gradients(self.peer.parameters())
        self.peer_optim.step()
        self.dist.sync_buffers(self.peer)
        return {}

    def state_dict(self) -> dict:
        return {"peer": self.peer.state_dict(), "peer_optim": self.peer_optim.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.peer.load_state_dict(state["peer"])
        self.peer_optim.load_state_dict(state["peer_optim"])
