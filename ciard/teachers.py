"""Teachers for distillation: the one resolver of teacher specs.

A teacher spec is a checkpoint path, a run directory (its ``best.pt``), ``zoo:NAME``, or
``auto``: the zoo's default teacher for the role when one is shipped for the dataset, else a
quick teacher trained once by the trainer and kept under ``<out_dir>/teachers/`` as
``{role}-{dataset}`` (``-n{subset}`` added when trained on a subset), by natural training for
the clean teacher and FGSM with random start for the robust one.

Everything that asks "which teacher is this?" comes here: the CLI and the app before a run
(:func:`check_teachers`), the trainer's caller (:func:`resolve_teachers`, passed to
:class:`~ciard.trainer.Trainer`, which itself never resolves a spec), and the sidebar and the
probing pages (:func:`find_auto`).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
import torch.nn as nn

from . import checkpoints, distributed, specs, zoo
from .config import TEACHERS_NEEDED, Config, ConfigError
from .data import DatasetSplits
from .runlog import RunDir, read_state
from .trainer import Trainer

log = logging.getLogger(__name__)

#: what a quick teacher is, per role: sized for the demo's 5-minute budget on 2 CPU cores
QUICK_TEACHER = {
    "clean": dict(method="natural", student="resnet20", epochs=12, lr=0.1, lr_schedule="cosine"),
    "robust": dict(method="fgsm_at", student="resnet20", epochs=12, lr=0.1, lr_schedule="cosine"),
}
#: the folder of quick teachers inside a run store
QUICK_DIR = "teachers"


def quick_teacher_name(role: str, dataset: str, train_subset: int | None = None) -> str:
    """The run name of the quick ``role`` teacher of a dataset (and training subset)."""
    return f"{role}-{dataset}" + (f"-n{train_subset}" if train_subset else "")


def quick_teacher_config(role: str, cfg: Config) -> Config:
    """The config that trains the ``auto`` teacher for ``role`` on cfg's data and eps."""
    return cfg.override(**QUICK_TEACHER[role], clean_teacher=None, robust_teacher=None,
                        name=quick_teacher_name(role, cfg.data.dataset, cfg.data.train_subset),
                        eval_pgd_steps=cfg.run.eval_pgd_steps,
                        eval_teachers=False, test_size=0, checkpoint_every=0)


# -- what "auto" is (no training): the sidebar and the probing pages ---------------------------
def _quick_candidates(role: str, dataset: str, runs_root: Path,
                      train_subset: int | None) -> list[Path]:
    """Quick-teacher run folders that serve ``dataset``: the one of this subset if given, else
    every one of the dataset, the full-data teacher first, then larger subsets first."""
    tdir = Path(runs_root) / QUICK_DIR
    if train_subset:
        return [tdir / quick_teacher_name(role, dataset, train_subset)]
    pattern = re.compile(re.escape(quick_teacher_name(role, dataset)) + r"(?:-n(\d+))?")
    found = []
    if tdir.is_dir():
        for d in tdir.iterdir():
            m = pattern.fullmatch(d.name)
            if m:
                found.append((-(float("inf") if m.group(1) is None else int(m.group(1))), d))
    return [d for _, d in sorted(found)]


def find_auto(role: str, dataset: str, runs_root: Path,
              train_subset: int | None = None) -> tuple[Path | None, str]:
    """What ``auto`` is for a role now, without training: (checkpoint or None, one line saying which).

    The shipped teacher, else a finished quick teacher of the dataset (of ``train_subset`` if
    given, else of any subset, the full data first).
    """
    try:
        shipped = zoo.default_teacher(f"{role}_teacher", dataset)
    except (OSError, ValueError, KeyError, TypeError):   # a malformed manifest must not break a page
        shipped = None
    if shipped is not None:
        return shipped, f"shipped: {shipped.name}"
    running = False
    for run in _quick_candidates(role, dataset, runs_root, train_subset):
        state = read_state(run)
        if (run / "best.pt").is_file() and state == "finished":
            return run / "best.pt", f"quick teacher trained earlier: {QUICK_DIR}/{run.name}"
        running = running or state == "running"
    if running:
        return None, "a quick teacher is being trained now"
    return None, "none yet: a quick one is trained on first use (a few minutes on a CPU)"


# -- before a run: the same check in the CLI and the app -----------------------------------------
def check_teachers(cfg: Config) -> list[str]:
    """Open each explicit teacher checkpoint the method needs, so a truncated or foreign file
    is refused before a run starts with one line instead of failing in the trainer process.
    Returns the cautions about them (:func:`teacher_cautions`): warnings, not errors."""
    for role in TEACHERS_NEEDED.get(cfg.method.method, ()):
        spec = getattr(cfg.model, f"{role}_teacher")
        if not spec or spec == "auto":
            continue
        try:
            checkpoints.load(specs.resolve(spec, f"{role}_teacher"))
        except checkpoints.CheckpointError as exc:
            raise ConfigError(f"{role}_teacher: {exc}") from None
    return teacher_cautions(cfg)


#: where the README shows why a label-smoothed clean teacher and the push term do not mix
LS_FINDING = "README, \"The label-smoothed clean teacher stalls CIARD\""


def teacher_cautions(cfg: Config) -> list[str]:
    """What a user should know about the teachers cfg names before distilling, as sentences.

    One so far: CIARD's push term with a clean teacher trained with label smoothing. In this
    project's lr pilots (2 epochs of PGD-5 on 10,000 CIFAR-10 images, lr 0.5) CIARD scored 16.3
    with the label-smoothed airbench94 clean teacher, 29.75 with a ResNet-20 trained without it
    and 28.1 with the push off. A teacher's own training config says whether it was smoothed;
    a checkpoint without one (or an ``auto`` teacher still to be trained, by natural training
    without smoothing) gives no caution. Never raises: a file that cannot be read is
    :func:`check_teachers`' business.
    """
    if cfg.method.method != "ciard" or not cfg.method.push_weight:
        return []
    try:
        path = teacher_file("clean", cfg.model.clean_teacher or "auto", cfg.data.dataset)
        if path is None:   # a quick teacher still to be trained: natural training, no smoothing
            return []
        smoothing = float(checkpoints.recorded_config(checkpoints.load(path)).get("method", {})
                          .get("label_smoothing") or 0.0)
    except (checkpoints.CheckpointError, ConfigError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    if smoothing <= 0:
        return []
    like = "such a teacher" if smoothing == 0.2 else "a clean teacher trained with label smoothing 0.2"
    return [f"the clean teacher ({Path(path).name}) was trained with label smoothing {smoothing:g}; with "
            f"{like}, CIARD's push term stalled training in this "
            f"project's pilots (validation score 16.3 against 29.75 with one trained without it; {LS_FINDING}). Prefer "
            f"a clean teacher trained without label smoothing, or set push_weight 0"]


# -- for a run: specs -> frozen models ----------------------------------------------------------
def teacher_file(role: str, spec: str, dataset: str) -> Path | None:
    """The checkpoint a ``role`` teacher spec names: for ``auto`` the shipped default, or None
    when there is none (a quick teacher is then trained on first use, see :func:`resolve_teacher`)."""
    if spec == "auto":
        return zoo.default_teacher(f"{role}_teacher", dataset)
    return specs.resolve(spec, f"{role}_teacher")


def resolve_teacher(role: str, spec: str, cfg: Config, data: DatasetSplits,
                    device: torch.device) -> nn.Module:
    """The ``role`` teacher a spec names, loaded on ``device`` (an ``auto`` one trained if need be)."""
    path = teacher_file(role, spec, cfg.data.dataset) or _quick_teacher(role, cfg, data)
    model = checkpoints.load_model(path, device)
    if model.num_classes != data.num_classes:
        raise checkpoints.CheckpointError(
            f"{role} teacher {path} predicts {model.num_classes} classes, the dataset has {data.num_classes}")
    log.info("%s teacher: %s (%s)", role, path, model.arch)
    return model


def resolve_teachers(cfg: Config, data: DatasetSplits, device: torch.device) -> dict[str, nn.Module]:
    """The teachers cfg's method needs, by role. Give this to :class:`Trainer` as ``teachers``.

    Under torchrun an ``auto`` teacher is trained (and cached) once, by rank 0: the other ranks
    wait at a barrier, then load what it wrote.
    """
    ddp = distributed.current()
    if not ddp.is_main:
        ddp.barrier()
    specs_by_role = {"clean": cfg.model.clean_teacher, "robust": cfg.model.robust_teacher}
    teachers = {role: resolve_teacher(role, specs_by_role[role], cfg, data, device)
                for role in TEACHERS_NEEDED.get(cfg.method.method, ())}
    if ddp.is_main:
        for caution in teacher_cautions(cfg):   # into the run's log, whoever started it
            log.warning("caution: %s", caution)
        ddp.barrier()
    return teachers


def trainer(cfg: Config, run_dir: RunDir | None = None, data: DatasetSplits | None = None) -> Trainer:
    """A :class:`Trainer` whose teachers are the ones cfg names (what ``ciard train`` runs)."""
    return Trainer(cfg, run_dir, data=data, teachers=resolve_teachers)


def _quick_teacher(role: str, cfg: Config, data: DatasetSplits) -> Path:
    tcfg = quick_teacher_config(role, cfg)
    run = RunDir(Path(cfg.run.out_dir) / QUICK_DIR / tcfg.run.name)
    marker = run.path / "best.pt"
    run.lock(wait=True)   # another run may be training this same teacher: wait for it, then reuse it
    try:
        if marker.is_file() and run.read_status().get("state") == "finished":
            return marker
        log.info("no shipped %s teacher: training a quick one (%s, %s, %d epochs) into %s",
                 role, tcfg.model.student, tcfg.method.method, tcfg.optim.epochs, run.path)
        # a quick teacher is trained by a method without teachers (natural, FGSM-AT)
        Trainer(tcfg, run, data=data, teachers={}).fit(resume=True)   # fit takes over the lock held here
    finally:
        run.unlock()
    return marker
