"""Test helpers for run stores: a finished run written straight into one, with a given student,
and a run directory that asks to stop after a number of steps."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch.nn as nn

from ciard import checkpoints
from ciard.config import preset
from ciard.runlog import RunDir


def write_finished_run(root: Path, name: str, model: nn.Module, **overrides) -> Path:
    """``root/name``: the demo preset's config with ``overrides``, a finished status, ``model`` as best.pt."""
    d = root / name
    d.mkdir(parents=True)
    cfg = preset("demo").override(name=name, out_dir=str(root), **overrides)
    (d / "config.json").write_text(cfg.to_json())
    (d / "status.json").write_text(json.dumps({"state": "finished", "step": 1, "total_steps": 1,
                                               "started": time.time(), "heartbeat": time.time()}))
    checkpoints.save_model(model.eval(), d / "best.pt", config=json.loads(cfg.to_json()))
    return d


class StopAfter(RunDir):
    """A run directory whose stop request appears after ``n`` step records."""

    def __init__(self, path, n):
        super().__init__(path)
        self.n, self.steps = n, 0

    def append(self, record):
        super().append(record)
        self.steps += record.get("kind") == "step"

    def stop_requested(self):
        return self.steps >= self.n
