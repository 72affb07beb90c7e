"""What every training objective provides, and the pieces methods share.

A method is given a batch and returns the student's loss plus the numbers worth logging
(timm's "task" shape), so the trainer's loop stays generic. Methods with state of their own
(temperatures, KD weights, a teacher that keeps training) expose it through
``state_dict``/``load_state_dict`` and do their own post-step work in ``after_step``.

What the trainer asks of a method, declared here with defaults (a new method file sets only
what differs, then registers its class in ``ciard/methods/__init__.py``, its name in
``ciard.config.METHODS`` and its teachers in ``ciard.config.TEACHERS_NEEDED``):

- ``name``: the ``--method`` value;
- ``teachers``: the teacher roles it distils from, ``()``, ``("robust",)`` or ``("clean", "robust")``
  (the trainer's caller resolves and passes them in);
- ``uses_attack``: whether it trains on adversarial examples (the trainer compiles the attack
  only then); such a method sets ``self.attack`` in ``__init__`` (usually ``self.pgd(...)``),
  which the eps warm-up scales;
- ``trains_teacher``: whether its robust teacher changes during training (CIARD's ITT); the
  trainer then re-checks that teacher each epoch and saves it at the end.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from .. import distributed
from ..attacks import IMAGE_BOUNDS, PGD
from ..config import Config
from ..fold import fold

Autocast = Callable[[], contextlib.AbstractContextManager]


@dataclass
class StepOutput:
    loss: torch.Tensor
    #: scalars to log (0-dim tensors or floats); converted on the host by the trainer
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)
    #: the student's logits on the inputs it was trained on (for running accuracy)
    logits: torch.Tensor | None = None


class Method:
    """Base class. Subclasses set ``name`` (and ``teachers``, ``uses_attack`` where they differ)
    and implement :meth:`compute`; see the module's docstring."""

    name = "method"
    #: teacher roles this method needs: subset of ("clean", "robust")
    teachers: tuple[str, ...] = ()
    #: whether the method trains on adversarial examples from ``self.attack``
    uses_attack: bool = True
    #: the training attack, set by the subclass's ``__init__`` (None: the method has none)
    attack: PGD | None = None
    _attack_base: tuple[float, float] | None = None

    @property
    def trains_teacher(self) -> bool:
        """Whether the robust teacher changes during training (default: no, it is frozen)."""
        return False

    def __init__(self, cfg: Config, student: nn.Module, teachers: dict[str, nn.Module],
                 autocast: Autocast = contextlib.nullcontext, compile_attack: bool = False,
                 bounds: tuple[float, float] | None = IMAGE_BOUNDS) -> None:
        self.cfg = cfg
        #: the inputs' valid range, which training attacks clamp to (None: 2-D points, unbounded)
        self.bounds = bounds
        self.student = student
        self.teacher_models = teachers
        self.autocast = autocast
        #: the process group under torchrun (averaging helpers; no-ops in one process)
        self.dist = distributed.current()
        for role in self.teachers:
            if role not in teachers:
                raise ValueError(f"method '{self.name}' needs a {role} teacher")
        for model in teachers.values():
            freeze(model)
        # eval-mode views with BatchNorm folded: the same functions, cheaper (see fold.py).
        # The student's view is refreshed before each attack; frozen teachers fold once.
        use_fold = cfg.run.fold_bn
        self._student_view = fold(student) if use_fold else None
        self.frozen = {role: fold(m) if use_fold else m for role, m in teachers.items()}
        # torch.compile pays off on the attack's eval-mode passes (measured: PGD-10 on a
        # ResNet-20, 490 -> 366 ms on 2 CPU cores) but not on train-mode passes (slower)
        self._compiled_view = None
        if compile_attack:
            import torch._dynamo
            torch._dynamo.config.suppress_errors = True   # fall back to eager, never fail a run
            self._compiled_view = torch.compile(self._student_view or student, dynamic=False)

    # -- the step ---------------------------------------------------------------
    def compute(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> StepOutput:
        raise NotImplementedError

    def after_step(self, out: StepOutput, y: torch.Tensor, progress: float) -> dict[str, float | torch.Tensor]:
        """Work after the student's optimiser step; returns extra metrics."""
        return {}

    # -- state ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def set_attack_scale(self, f: float) -> None:
        """Scale the training attack's eps and step size by ``f`` (the eps warm-up)."""
        attack = self.attack
        if attack is None:
            return
        if self._attack_base is None:
            self._attack_base = (attack.eps, attack.step_size)
        attack.eps, attack.step_size = self._attack_base[0] * f, self._attack_base[1] * f

    # -- shared helpers -----------------------------------------------------------
    def attack_target(self) -> nn.Module:
        """The student as the attack sees it: eval mode, BatchNorm folded at current weights."""
        if self._student_view is not None:
            self._student_view.refresh()
        if self._compiled_view is not None:
            return self._compiled_view
        return self._student_view if self._student_view is not None else self.student

    def pgd(self, loss: str = "ce", start: str = "normal", *, train_mode: bool = False,
            clamp_start: bool = True) -> PGD:
        """The training attack of the config (PGD on the student), under the run's autocast.

        ``train_mode`` and ``clamp_start`` follow each method's official code (see
        :class:`ciard.attacks.PGD`).
        """
        a = self.cfg.attack
        return PGD(eps=a.eps, steps=a.pgd_steps, step_size=a.pgd_step_size, loss=loss,
                   start=start, autocast=self.autocast, train_mode=train_mode,
                   clamp_start=clamp_start, bounds=self.bounds)

    def adversarial(self, x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        """x' from the method's training attack ``self.attack``.

        An eval-mode attack runs on :meth:`attack_target` (the folded, possibly compiled view);
        a train-mode one on the live student, whose BatchNorm running statistics it updates.
        """
        target = self.student if self.attack.train_mode else self.attack_target()
        return self.attack(target, x, y, **kw)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no parameter gradients: a teacher that never changes."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
