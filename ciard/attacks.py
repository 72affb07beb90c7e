"""L-inf attacks behind one interface.

Every attack is called as ``attack(model, x, y)`` with ``x`` a float batch in [0, 1] and
returns ``x_adv`` with ``|x_adv - x|_inf <= eps`` and ``x_adv`` in [0, 1]. The base class
guarantees, for every subclass, that the model's train/eval mode (per module) and its
parameters' ``requires_grad`` flags and ``.grad`` tensors are left exactly as they were found:
the attack only ever differentiates with respect to the input. Attacks run the model in eval
mode; a training attack built with ``train_mode=True`` runs it in train mode instead, as the
official ARD, PGD-AT (Madry et al.) and FGSM-AT (Wong et al.) code does: BatchNorm then uses
the batch's statistics and *updates its running statistics* at every attack step.

White-box attacks written here (they are also the ones the trainer uses, so there is one PGD
in the project): FGSM, PGD with a cross-entropy, KL or CW-margin objective, CW-inf.
APGD-CE, APGD-T, FAB-T, Square and AutoAttack come from torchattacks, wrapped to the same
contract (inputs made contiguous NCHW: torchattacks' FAB fails on channels-last tensors).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F


@contextlib.contextmanager
def model_mode(model: nn.Module, train: bool = False) -> Iterator[None]:
    """Put ``model`` in eval (or train) mode; afterwards restore *each module's* own flag.

    Restoring only the top module's flag (``was = model.training; ...; model.train(was)``)
    is not enough: it would set every submodule to the top's flag, e.g. switch the frozen
    BatchNorms inside a model in mixed modes to train mode.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def attack_mode(model: nn.Module, train: bool = False) -> Iterator[None]:
    """Put ``model`` in eval (or train) mode with frozen parameters; restore both after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with model_mode(model, train):
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def eps_text(eps: float) -> str:
    """An L-inf budget as people write it: ``8/255`` when it is a whole number of 255ths."""
    n = eps * 255
    return f"{round(n)}/255" if abs(n - round(n)) < 1e-6 else f"{eps:.4g}"


#: the valid input range of images; ``bounds=None`` means inputs are unbounded (2-D toy points)
IMAGE_BOUNDS: tuple[float, float] = (0.0, 1.0)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float,
            bounds: tuple[float, float] | None = IMAGE_BOUNDS) -> torch.Tensor:
    """Clip to the L-inf ball of radius eps around x and to ``bounds`` (the image range [0, 1])."""
    x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
    return x_adv.clamp_(*bounds) if bounds is not None else x_adv


def cw_margin(logits: torch.Tensor, y: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    """Per-sample CW margin to maximise: -max(z_y - max_{j!=y} z_j + kappa, 0)."""
    onehot = F.one_hot(y, logits.shape[1]).bool()
    real = logits[onehot]
    other = logits.masked_fill(onehot, float("-inf")).amax(dim=1)
    return -(real - other + kappa).clamp(min=0.0)


def kl_to_target(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(target || softmax(logits)), the objective RSLAD and TRADES maximise."""
    log_q = F.log_softmax(logits.float(), dim=1)
    p = target_probs.float()
    return (p * (torch.log(p.clamp_min(1e-12)) - log_q)).sum(dim=1)


class Attack:
    """Base class: subclasses implement :meth:`perturb` on a frozen, eval-mode model."""

    name = "attack"
    #: run the model in train mode during the attack (see the module docstring)
    train_mode = False

    def __init__(self, eps: float, bounds: tuple[float, float] | None = IMAGE_BOUNDS) -> None:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps = {eps} must be in [0, 1]")
        self.eps = float(eps)
        #: the valid input range every iterate is clamped to; None: no clamp (2-D toy points)
        self.bounds = tuple(bounds) if bounds is not None else None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        x = x.detach()
        with attack_mode(model, self.train_mode), torch.enable_grad():
            x_adv = self.perturb(model, x, y, **kw)
        return project(x_adv.detach(), x, self.eps, self.bounds)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class PGD(Attack):
    """Projected gradient descent (Madry et al., 2018), L-inf.

    Args:
        eps: radius of the L-inf ball.
        steps: number of signed-gradient steps.
        step_size: size of each step (``alpha``).
        loss: ``"ce"`` (cross-entropy on ``y``), ``"kl"`` (KL from ``target_probs``, passed
            at call time, to the model's prediction; RSLAD / TRADES) or ``"cw"`` (CW margin).
        start: ``"uniform"`` (x + U(-eps, eps)), ``"normal"`` (x + 0.001 N(0, 1), the training
            attack of TRADES, RSLAD, MTARD and CIARD) or ``"none"``.
        kappa: CW confidence margin.
        generator: optional RNG for the random start (reproducible evaluation).
        autocast: optional context factory (bf16 in training); evaluation leaves it None.
        train_mode: run the model in train mode (official ARD / PGD-AT / FGSM-AT training).
        clamp_start: clamp the random start to [0, 1] before the first step. The evaluation
            code and PGD-AT / FGSM-AT do; the official TRADES, RSLAD, ARD, MTARD and CIARD
            training attacks take their first gradient at the unclamped start (every later
            iterate is projected to the ball and to [0, 1] either way).
        bounds: the valid input range (default the image range [0, 1]); ``None`` clamps to the
            eps-ball alone (points in the plane, ``ciard.playground``).
    Shapes: x N x C x H x W in [0, 1] (or N x D points with ``bounds=None``), y N (int64);
    returns the shape of x.
    """

    name = "pgd"

    def __init__(self, eps: float = 8 / 255, steps: int = 10, step_size: float = 2 / 255,
                 loss: str = "ce", start: str = "uniform", kappa: float = 50.0,
                 generator: torch.Generator | None = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
                 train_mode: bool = False, clamp_start: bool = True,
                 bounds: tuple[float, float] | None = IMAGE_BOUNDS) -> None:
        super().__init__(eps, bounds)
        if loss not in ("ce", "kl", "cw"):
            raise ValueError(f"unknown PGD loss '{loss}'")
        if start not in ("uniform", "normal", "none"):
            raise ValueError(f"unknown PGD start '{start}'")
        self.steps, self.step_size, self.loss, self.start, self.kappa = \
            int(steps), float(step_size), loss, start, float(kappa)
        self.train_mode, self.clamp_start = bool(train_mode), bool(clamp_start)
        self._generator = generator
        self._autocast = autocast

    def _random_start(self, x: torch.Tensor) -> torch.Tensor:
        g = self._generator
        if self.start == "none":
            return x.clone()
        noise = torch.empty(x.shape, device=x.device, dtype=x.dtype)
        if self.start == "uniform":   # the draws of the official code's zeros_like(x).uniform_
            x0 = x + noise.uniform_(-self.eps, self.eps, generator=g)
        else:
            x0 = x + 0.001 * noise.normal_(generator=g)
        return x0.clamp(*self.bounds) if self.clamp_start and self.bounds is not None else x0

    def objective(self, logits: torch.Tensor, y: torch.Tensor,
                  target_probs: torch.Tensor | None) -> torch.Tensor:
        """Summed per-sample objective: each sample's gradient is independent of the batch."""
        if self.loss == "ce":
            return F.cross_entropy(logits.float(), y, reduction="sum")
        if self.loss == "cw":
            return cw_margin(logits.float(), y, self.kappa).sum()
        if target_probs is None:
            raise ValueError("PGD with loss='kl' needs target_probs")
        return kl_to_target(logits, target_probs).sum()

    def step_loss(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                  target_probs: torch.Tensor | None) -> torch.Tensor:
        """The objective at the current iterate (the model's forward pass included)."""
        with (self._autocast or contextlib.nullcontext)():
            logits = model(x_adv)
        return self.objective(logits, y, target_probs)

    def perturb(self, model, x, y, target_probs: torch.Tensor | None = None):
        x_adv = self._random_start(x)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            loss = self.step_loss(model, x_adv, y, target_probs)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = project(x_adv.detach() + self.step_size * grad.sign(), x, self.eps, self.bounds)
        return x_adv


class TeacherKLPGD(PGD):
    """PGD maximising KL(T(x') || S(x')): the teacher's prediction *at the iterate* is the target.

    AdaAD's inner maximisation (Huang et al., CVPR 2023; ``boyellow/AdaAD``, ``AT_helper.py``,
    ``adaad_inner_loss``), which DGAD reuses (``kunsaram01/DGAD``, same function): the sum over
    the batch of ``KLDivLoss(log_softmax(S(x')), softmax(T(x')))``, differentiated through
    *both* networks (the official code does not detach the teacher's output, so the teacher's
    input gradient is part of the attack). The teacher is a frozen eval-mode model given at
    construction; the student is the attacked model. Start x + 0.001 N(0, 1), unclamped.
    """

    name = "pgd_teacher_kl"

    def __init__(self, teacher: nn.Module, **kw) -> None:
        kw.setdefault("start", "normal")
        kw.setdefault("clamp_start", False)
        super().__init__(loss="kl", **kw)
        self._teacher = teacher

    def step_loss(self, model, x_adv, y, target_probs):
        with (self._autocast or contextlib.nullcontext)():
            s_logits, t_logits = model(x_adv), self._teacher(x_adv)
        return F.kl_div(F.log_softmax(s_logits.float(), dim=1), F.softmax(t_logits.float(), dim=1),
                        reduction="sum")


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., 2015): one step of size eps, no start."""

    name = "fgsm"

    def __init__(self, eps: float = 8 / 255, **kw) -> None:
        super().__init__(eps=eps, steps=1, step_size=eps, loss="ce", start="none", **kw)


class CWInf(PGD):
    """CW-inf (Carlini & Wagner's margin loss under PGD, L-inf), kappa = 50 by default.

    It starts from x itself (zero perturbation, no random start), as the official CIARD
    evaluation (``attack_eval.py``, ``attack_cw_inf``) does. That code clamps to [0, 1] only
    at the end, so its intermediate iterates can leave the image range; here every iterate is
    projected to [0, 1], the threat model's valid images.
    """

    name = "cw"

    def __init__(self, eps: float = 8 / 255, steps: int = 30, step_size: float = 2 / 255,
                 kappa: float = 50.0, start: str = "none", **kw) -> None:
        super().__init__(eps=eps, steps=steps, step_size=step_size, loss="cw", kappa=kappa,
                         start=start, **kw)


class _TorchAttacks(Attack):
    """Adapter for a torchattacks attack built per call (it binds the model at construction)."""

    def build(self, model: nn.Module, num_classes: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def perturb(self, model, x, y, **kw):
        logits_dim = kw.get("num_classes")
        if logits_dim is None:
            with torch.no_grad():
                logits_dim = model(x[:1]).shape[1]
        atk = self.build(model, int(logits_dim))
        return atk(x.contiguous(memory_format=torch.contiguous_format), y)


class APGD(_TorchAttacks):
    """APGD-CE (Croce & Hein, 2020), step-size free PGD; torchattacks implementation."""

    name = "apgd"

    def __init__(self, eps: float = 8 / 255, steps: int = 100, restarts: int = 1,
                 loss: str = "ce", seed: int = 0) -> None:
        super().__init__(eps)
        self.steps, self.restarts, self.loss, self.seed = steps, restarts, loss, seed

    def build(self, model, num_classes):
        import torchattacks
        return torchattacks.APGD(model, norm="Linf", eps=self.eps, steps=self.steps,
                                 n_restarts=self.restarts, loss=self.loss, seed=self.seed)


class Square(_TorchAttacks):
    """Square attack (Andriushchenko et al., 2020): score-based black-box, margin loss.

    5,000 queries by default (AutoAttack's budget); the CIARD paper's black-box Square column
    uses 100 (``attack_eval.py``), the protocol's ``square100``.
    """

    name = "square"

    def __init__(self, eps: float = 8 / 255, queries: int = 5000, seed: int = 0) -> None:
        super().__init__(eps)
        self.queries, self.seed = queries, seed

    def build(self, model, num_classes):
        import torchattacks
        return torchattacks.Square(model, norm="Linf", eps=self.eps, n_queries=self.queries,
                                   n_restarts=1, seed=self.seed)


class AutoAttack(_TorchAttacks):
    """AutoAttack, standard version (Croce & Hein, 2020): APGD-CE, APGD-T, FAB-T, Square.

    torchattacks' own ``AutoAttack`` runs its APGDs with 10 steps; the published standard
    version uses 100, which is what this class does by default (``steps`` lowers it, and the
    evaluation report records the value used).
    """

    name = "autoattack"

    def __init__(self, eps: float = 8 / 255, steps: int = 100, queries: int = 5000,
                 seed: int = 0) -> None:
        super().__init__(eps)
        self.steps, self.queries, self.seed = steps, queries, seed

    def build(self, model, num_classes):
        import torchattacks
        kw = dict(norm="Linf", eps=self.eps, seed=self.seed)
        return torchattacks.MultiAttack([
            torchattacks.APGD(model, steps=self.steps, loss="ce", n_restarts=1, **kw),
            torchattacks.APGDT(model, steps=self.steps, n_restarts=1, n_classes=num_classes, **kw),
            torchattacks.FAB(model, steps=self.steps, multi_targeted=True, n_classes=num_classes,
                             n_restarts=1, **kw),
            torchattacks.Square(model, n_queries=self.queries, n_restarts=1, **kw),
        ])


ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM, "pgd": PGD, "cw": CWInf, "apgd": APGD, "square": Square,
    "autoattack": AutoAttack,
}


#: how each attack is named on pages and in tables
LABELS = {"fgsm": "FGSM", "pgd": "PGD", "cw": "CW-inf", "apgd": "APGD-CE", "square": "Square",
          "autoattack": "AutoAttack"}


def make_attack(name: str, **kw) -> Attack:
    """Build an attack by name (``fgsm``, ``pgd``, ``cw``, ``apgd``, ``square``, ``autoattack``)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in ATTACKS:
        raise ValueError(f"unknown attack '{name}'; choose one of: {', '.join(ATTACKS)}")
    return ATTACKS[key](**kw)
