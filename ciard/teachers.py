"""Teachers for distillation: from a checkpoint, the shipped zoo, or trained on the spot.

A teacher spec is a checkpoint path, a run directory (its ``best.pt``), ``zoo:NAME``, or
``auto``: the zoo's default teacher for the role when one is shipped for the dataset, else a
quick teacher trained once by this same trainer and kept under ``<out_dir>/teachers/``
(natural training for the clean teacher, FGSM with random start for the robust one).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from . import checkpoints
from .config import Config
from .data import DatasetSplits

log = logging.getLogger(__name__)

#: what a quick teacher is, per role: sized for the demo's 5-minute budget on 2 CPU cores
QUICK_TEACHER = {
    "clean": dict(method="natural", student="resnet20", epochs=12, lr=0.1, lr_schedule="cosine"),
    "robust": dict(method="fgsm_at", student="resnet20", epochs=12, lr=0.1, lr_schedule="cosine"),
}


def quick_teacher_config(role: str, cfg: Config) -> Config:
    """The config that trains the ``auto`` teacher for ``role`` on cfg's data and eps."""
    return cfg.override(**QUICK_TEACHER[role], clean_teacher=None, robust_teacher=None,
                        name=f"{role}-{cfg.data.dataset}"
                        + (f"-n{cfg.data.train_subset}" if cfg.data.train_subset else ""), eval_pgd_steps=cfg.run.eval_pgd_steps,
                        eval_teachers=False, test_size=0, checkpoint_every=0)


def resolve_teacher(role: str, spec: str, cfg: Config, data: DatasetSplits,
                    device: torch.device) -> nn.Module:
    if spec == "auto":
        path = checkpoints.zoo_default(f"{role}_teacher", cfg.data.dataset)
        if path is None:
            path = _quick_teacher(role, cfg, data)
    else:
        path = checkpoints.resolve_teacher_spec(spec)
    model = checkpoints.load_model(path, device)
    if model.num_classes != data.num_classes:
        raise checkpoints.CheckpointError(
            f"{role} teacher {path} predicts {model.num_classes} classes, the dataset has {data.num_classes}")
    log.info("%s teacher: %s (%s)", role, path, model.arch)
    return model


def _quick_teacher(role: str, cfg: Config, data: DatasetSplits) -> Path:
    from .runlog import RunDir
    from .trainer import Trainer
    tcfg = quick_teacher_config(role, cfg)
    run = RunDir(Path(cfg.run.out_dir) / "teachers" / tcfg.run.name)
    marker = run.path / "best.pt"
    run.lock(wait=True)   # another run may be training this same teacher: wait for it, then reuse it
    try:
        if marker.is_file() and run.read_status().get("state") == "finished":
            return marker
        log.info("no shipped %s teacher: training a quick one (%s, %s, %d epochs) into %s",
                 role, tcfg.model.student, tcfg.method.method, tcfg.optim.epochs, run.path)
        Trainer(tcfg, run, data=data).fit(resume=True)   # fit takes over the lock held here
    finally:
        run.unlock()
    return marker
