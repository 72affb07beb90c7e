"""Optional experiment trackers: every record the run store writes, also sent elsewhere.

``--log tensorboard`` writes TensorBoard event files to ``RUN_DIR/tensorboard``
(``tensorboard --logdir runs``); ``--log mlflow`` logs the config as parameters and every
metric to MLflow (``MLFLOW_TRACKING_URI``, default a SQLite store ``mlflow.db`` beside the
runs; experiment ``MLFLOW_EXPERIMENT_NAME``, default "ciard"). Step records go under
``train/``, epoch checks under ``val/``, the final test under ``test/``; the x axis is the
training step. Only rank 0 of a data-parallel run logs. The run store stays the source of
truth: a tracker that fails is reported once and switched off, never failing the run.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SKIP = {"kind", "step", "time"}
_PREFIX = {"step": "train", "epoch": "val", "final": "test"}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's numeric values under their tracker names (``train/loss``, ``val/student_pgd``)."""
    prefix = _PREFIX.get(record.get("kind", ""), record.get("kind", "other"))
    out = {}
    for k, v in record.items():
        if k in _SKIP or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[f"{prefix}/{k}"] = float(v)
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


class TensorBoard:
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        table = "\n".join(f"| {k} | {v} |" for k, v in _flatten(config).items())
        self.writer.add_text("config", "| setting | value |\n|---|---|\n" + table)

    def log(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0))
        for key, value in scalars(record).items():
            self.writer.add_scalar(key, value, step, walltime=record.get("time"))

    def close(self, status: str) -> None:
        self.writer.close()


class MLflow:
    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir.parent.resolve() / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "ciard")
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
        self.run_id = self.client.create_run(exp_id, run_name=run_dir.name,
                                             tags={"ciard.run_dir": str(run_dir.resolve())}).info.run_id
        from mlflow.entities import Param
        params = [Param(k, v[:6000]) for k, v in _flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.uri = uri

    def log(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric
        step = int(record.get("step", 0))
        ts = int(1000 * record.get("time", time.time()))
        metrics = [Metric(k.replace("/", "."), v, ts, step) for k, v in scalars(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status == "finished" else
                                   "KILLED" if status == "stopped" else "FAILED")


TRACKERS = {"tensorboard": TensorBoard, "mlflow": MLflow}


class Trackers:
    """The trackers a run asked for; each one that fails is reported and dropped."""

    def __init__(self, names: str, run_dir: Path, config: dict[str, Any]) -> None:
        self.active: dict[str, Any] = {}
        for name in (n.strip() for n in names.split(",") if n.strip() not in ("", "none")):
            try:
                self.active[name] = TRACKERS[name](run_dir, config)
                log.info("logging metrics to %s", name)
            except ImportError as exc:
                log.warning("--log %s: %s is not installed (pip install -r requirements-scale.txt); "
                            "metrics go to the run store only", name, exc.name)
            except Exception as exc:  # a tracker must never cost the run
                log.warning("--log %s could not start (%s); metrics go to the run store only", name, exc)

    def log(self, record: dict[str, Any]) -> None:
        for name, tracker in list(self.active.items()):
            try:
                tracker.log(record)
            except Exception as exc:
                log.warning("--log %s failed (%s); switching it off", name, exc)
                self.active.pop(name)

    def close(self, status: str) -> None:
        for name, tracker in self.active.items():
            try:
                tracker.close(status)
            except Exception as exc:
                log.warning("--log %s: closing failed (%s)", name, exc)
        self.active = {}
