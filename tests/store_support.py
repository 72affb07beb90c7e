"""Test helper: a finished run written straight into a run store, with a given student."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch.nn as nn

from ciard import checkpoints
from ciard.config import preset


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
