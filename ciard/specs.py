"""Checkpoint specs, as people type them, resolved to one file path.

A spec is a checkpoint file, a run directory (its ``best.pt``, the best student) or
``zoo:NAME`` (a shipped model, see :mod:`ciard.zoo`). Every command, page and check that takes
a spec resolves it here; ``auto`` teachers are resolved by :mod:`ciard.teachers`, which uses
this for every other spec.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from . import checkpoints, zoo
from .checkpoints import CheckpointError
from .paths import path_problem

ZOO_PREFIX = "zoo:"


def resolve(spec: str | os.PathLike, what: str = "checkpoint") -> Path:
    """The checkpoint file ``spec`` names (it may not exist: loading says so).

    Raises :class:`~ciard.checkpoints.CheckpointError` with one line naming ``what`` for an
    unknown zoo entry or a text that cannot be a path (empty, NUL, ``~nosuchuser``...).
    """
    text = os.fspath(spec)
    if text.startswith(ZOO_PREFIX):
        path = zoo.entry_path(text[len(ZOO_PREFIX):])
        if path is None or not path.is_file():
            raise CheckpointError(f"no zoo entry named '{text[len(ZOO_PREFIX):]}'")
        return path
    problem = path_problem(text)
    if problem:
        raise CheckpointError(f"{what}: {problem}")
    path = Path(text).expanduser()
    return path / "best.pt" if path.is_dir() else path


def load_model(spec: str | os.PathLike, device="cpu", role: str = "student") -> nn.Module:
    """The eval-mode model of a spec (see :func:`ciard.checkpoints.load_model`)."""
    return checkpoints.load_model(resolve(spec), device=device, role=role)
