"""The run store the app works on: ``runs/`` under the repository, or ``$CIARD_RUNS_DIR``."""
from __future__ import annotations

import os
from pathlib import Path

from ..runs import ROOT, RunStore

RUNS_ENV = "CIARD_RUNS_DIR"


def runs_root() -> Path:
    """Where runs live: ``$CIARD_RUNS_DIR`` if set (tests use it), else ``<repo>/runs``."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser().resolve() if env else ROOT / "runs"


def get_store() -> RunStore:
    # Cheap to build (it only holds a path), so a fresh one per script run follows the env.
    return RunStore(runs_root())
