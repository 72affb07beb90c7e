"""The run store the app works on: ``$CIARD_RUNS_DIR``, else ``runs/`` of the checkout (of the
working directory for an installed package)."""
from __future__ import annotations

import os
from pathlib import Path

from ..resources import default_runs_dir
from ..runs import RunStore

RUNS_ENV = "CIARD_RUNS_DIR"


def runs_root() -> Path:
    """Where runs live: ``$CIARD_RUNS_DIR`` if set (tests use it), else the default run store."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser().resolve() if env else default_runs_dir()


def get_store() -> RunStore:
    # Cheap to build (it only holds a path), so a fresh one per script run follows the env.
    return RunStore(runs_root())
