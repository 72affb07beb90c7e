"""Checkpoints: atomic save, safe load (``weights_only=True``), model rebuild, teacher specs.

A checkpoint is a plain dict of tensors and primitives:
  format, kind ("train" or "model"), model {arch, num_classes, kwargs}, state_dict,
  config (the run's Config as a dict), metrics, and for training checkpoints the optimiser,
  method and RNG states, epoch, batch and step counters.
Loading never executes code from the file: ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

FORMAT = 1
ROOT = Path(__file__).resolve().parent.parent
ZOO_DIR = ROOT / "checkpoints"
MANIFEST = ZOO_DIR / "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated or not one of ours; the message says which."""


def save(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically: a temp file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **obj}, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; every failure becomes one clear CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle refusing a global, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "model" not in obj:
        raise CheckpointError(f"{path} is not a CIARD checkpoint (no model/state_dict)")
    if obj.get("format", 0) > FORMAT:
        raise CheckpointError(f"{path} has format {obj['format']}; this version reads up to {FORMAT}")
    return obj


def model_meta(model: nn.Module) -> dict[str, Any]:
    return {"arch": model.arch, "num_classes": model.num_classes,
            "kwargs": dict(getattr(model, "build_kwargs", {}))}


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    from .models import build_model
    return build_model(meta["arch"], meta["num_classes"], **meta.get("kwargs", {}))


def save_model(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """A small, model-only checkpoint (what the zoo ships and teachers are loaded from)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save({"kind": "model", "model": model_meta(model), "state_dict": state, **extra}, path)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               role: str = "student") -> nn.Module:
    """Rebuild the model in a checkpoint, in eval mode.

    ``path`` may also be ``zoo:NAME``. For a training checkpoint, ``role="robust_teacher"``
    returns the (iteratively trained) robust teacher it carries instead of the student.
    """
    obj = load(resolve_teacher_spec(str(path)) if str(path).startswith("zoo:") else path)
    meta, state = obj["model"], obj["state_dict"]
    if role == "robust_teacher":
        method_state = obj.get("method_state") or {}
        if "robust" not in method_state:
            raise CheckpointError(f"{path} carries no robust teacher")
        meta, state = obj["robust_meta"], method_state["robust"]
    elif role != "student":
        raise ValueError(f"unknown role '{role}'")
    model = build_from_meta(meta)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit {meta['arch']}: {str(exc).splitlines()[0]}") from None
    return model.to(device).eval()


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- the shipped zoo and teacher specs ------------------------------------------------
def zoo_entries() -> list[dict[str, Any]]:
    if not MANIFEST.is_file():
        return []
    return json.loads(MANIFEST.read_text()).get("entries", [])


def zoo_path(name: str) -> Path | None:
    for entry in zoo_entries():
        if entry.get("name") == name:
            return ZOO_DIR / entry["file"]
    return None


#: which zoo datasets serve a --dataset, best first: the embedded subset is drawn from
#: CIFAR-10's own train/test splits, so full CIFAR-10 teachers serve it too
ZOO_DATASETS = {"default": ("cifar10", "default"), "cifar10": ("cifar10",),
                "cifar10-archive": ("cifar10",)}


def zoo_default(role: str, dataset: str = "cifar10") -> Path | None:
    """The shipped teacher for a role ("clean_teacher" / "robust_teacher"), if any."""
    entries = zoo_entries()
    for ds in ZOO_DATASETS.get(dataset, (dataset,)):
        for entry in entries:
            if entry.get("role") == role and entry.get("default") and entry.get("dataset") == ds:
                path = ZOO_DIR / entry["file"]
                if path.is_file():
                    return path
    return None


def resolve_teacher_spec(spec: str, check_only: bool = False) -> Any:
    """``path`` | ``zoo:NAME`` | ``auto``. With check_only, return whether it can resolve."""
    if spec == "auto":
        return True if check_only else spec
    if spec.startswith("zoo:"):
        path = zoo_path(spec[4:])
        if check_only:
            return path is not None and path.is_file()
        if path is None or not path.is_file():
            raise CheckpointError(f"no zoo entry named '{spec[4:]}'")
        return path
    path = Path(spec)
    if path.is_dir():  # a run directory: its best student
        path = path / "best.pt"
    return path.is_file() if check_only else path
