"""Run names (and zoo entry names): one folder name inside the run store, never a path.

The CLI (``--name``), the config file, the app's Train form and the run store all go through
:func:`check_run_name`, so ``../x``, ``/abs/path`` and ``a/b`` are refused in every one of them
with the same line, before anything is created. :func:`run_path` also checks that the resolved
directory sits directly in the store (a symlink called ``x`` that points elsewhere is refused).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError
from .paths import shorten

MAX_LENGTH = 100
#: letters, digits, '.', '_' and '-'; 1 to 100 characters; no leading dot (no '.', '..', hidden names)
NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (MAX_LENGTH - 1))
RULE = f"one folder name of letters, digits, '.', '_' or '-', 1 to {MAX_LENGTH} characters, not starting with '.'"


def check_name(name: object, what: str = "run name") -> str:
    """``name`` if it is one safe folder or file name, else ConfigError naming it and the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{what} {shorten(name)} is not allowed: use {RULE}")
    return name


def check_run_name(name: object) -> str:
    """``name`` if it is a valid run name, else ConfigError naming it and the rule."""
    return check_name(name, "run name")


def run_path(root: str | os.PathLike, name: object) -> Path:
    """``root/name`` for a valid name whose resolved directory lies directly in ``root``."""
    path = Path(root) / check_run_name(name)
    if path.resolve().parent != Path(root).resolve():
        raise ConfigError(f"run name {shorten(name)} leads outside the run store {Path(root)}")
    return path
