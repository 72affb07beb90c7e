"""Test helpers for run stores: a finished run written straight into one, with a given student,
a run directory that asks to stop after a number of steps, a tiny config and a bounded wait."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch.nn as nn

from ciard import checkpoints
from ciard.config import Config, preset
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


def tiny_config(**kw) -> Config:
    """A natural-training SmallCNN run of seconds on a CPU (3 epochs of 16 steps)."""
    base = dict(method="natural", student="smallcnn", train_subset=512, epochs=3, batch_size=32,
                eval_size=32, eval_pgd_steps=1, test_size=0, precision="fp32", device="cpu",
                checkpoint_every=4, threads=1)
    base.update(kw)
    return Config().override(**base)


def wait_for(store, name, cond, timeout=120):
    """Poll run ``name`` until ``cond(info)``; fail with its log after ``timeout`` s."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        info = store.get(name)
        if cond(info):
            return info
        time.sleep(0.3)
    raise AssertionError(f"timed out; state {store.get(name).state}; log:\n{store.log_tail(name)}")
