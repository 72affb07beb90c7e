"""Checkpoints: atomic save, safe load (``weights_only=True``), model rebuild.

A checkpoint is a plain dict of tensors and primitives:
  format, kind ("train" or "model"), model {arch, num_classes, kwargs}, state_dict,
  config (the run's Config as a dict), metrics, and for training checkpoints the optimiser,
  method and RNG states, epoch, batch and step counters.
Loading never executes code from the file: ``torch.load(..., weights_only=True)``. Every
failure is one line in our words (never torch's, which suggests ``weights_only=False``), and
the ``model`` metadata is checked before anything is built from it (:func:`check_meta`), so a
file cannot make the loader allocate a model it names.

Everything here takes a file path (or, :func:`load_bytes`, an upload held in memory); what people type (a run directory, ``zoo:NAME``) becomes
one in :func:`ciard.specs.resolve`.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .models import MAX_CLASSES, build_model, check_buildable
from .errors import CheckpointError
from .paths import path_problem, shorten

log = logging.getLogger(__name__)

FORMAT = 1


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


#: how a file torch.save wrote begins: a zip archive (torch >= 1.6), or a pickle (older)
_MAGIC = (b"PK\x03\x04", b"\x80\x02")


def _why_unreadable(exc: Exception) -> str:
    """What a torch.load failure means, in our words."""
    text = str(exc)
    if "Unsupported global" in text or "Unsupported operand" in text:
        return ("it holds Python objects besides tensors and plain values; such files are never "
                "loaded, because loading them could run code")
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or "zip archive" in text or "unexpected EOF" in text:
        return "the file is truncated or damaged"
    return "the file is damaged or is not a checkpoint"


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; every failure becomes one clear CheckpointError."""
    problem = path_problem(path)
    if problem:
        raise CheckpointError(f"checkpoint: {problem}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if not head.startswith(_MAGIC):
        raise CheckpointError(f"cannot read checkpoint {path}: it is not a file torch.save wrote")
    return _read(path, path, map_location)


def load_bytes(data: bytes, where: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint held in memory (an upload) as safely as :func:`load` reads a file."""
    if not data[:4].startswith(_MAGIC):
        raise CheckpointError(f"cannot read checkpoint {where}: it is not a file torch.save wrote")
    return _read(io.BytesIO(data), where, map_location)


def _read(src: str | os.PathLike | io.BytesIO, where: str | os.PathLike,
          map_location: str | torch.device) -> dict[str, Any]:
    try:
        obj = torch.load(src, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, a pickle refusing a global, ...
        raise CheckpointError(f"cannot read checkpoint {where}: {_why_unreadable(exc)}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "model" not in obj:
        raise CheckpointError(f"{where} is not a CIARD checkpoint (no model/state_dict)")
    fmt = obj.get("format", 0)
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise CheckpointError(f"{where} is not a CIARD checkpoint (its format is not a number)")
    if fmt > FORMAT:
        raise CheckpointError(f"{where} has format {fmt}; this version reads up to {FORMAT}")
    check_meta(obj["model"], where)
    return obj


def model_meta(model: nn.Module) -> dict[str, Any]:
    return {"arch": model.arch, "num_classes": model.num_classes,
            "kwargs": dict(getattr(model, "build_kwargs", {}))}


#: the build_model keyword arguments a checkpoint may carry, and what each must be
META_KWARGS = ("mean", "std", "width_mult")


def check_meta(meta: Any, where: str | os.PathLike = "checkpoint") -> dict[str, Any]:
    """The ``model`` metadata of a checkpoint, checked before anything is built from it.

    A known architecture of bounded size (:func:`ciard.models.check_buildable`), a class count
    in [1, MAX_CLASSES], and only the keyword arguments :data:`META_KWARGS`, each of its type.
    """
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: its model description is a {type(meta).__name__}, not a mapping")
    arch, classes, kwargs = meta.get("arch"), meta.get("num_classes"), meta.get("kwargs", {})
    if not isinstance(arch, str):
        raise CheckpointError(f"{where}: its model names no architecture")
    problem = check_buildable(arch)
    if problem:
        raise CheckpointError(f"{where}: {problem}")
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= MAX_CLASSES:
        raise CheckpointError(f"{where}: num_classes {shorten(classes)} is not a class count "
                              f"from 1 to {MAX_CLASSES:,}")
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{where}: its model kwargs are a {type(kwargs).__name__}, not a mapping")
    unknown = sorted(str(k) for k in kwargs if k not in META_KWARGS)
    if unknown:
        raise CheckpointError(f"{where}: unexpected model argument {shorten(unknown[0])} "
                              f"(known: {', '.join(META_KWARGS)})")
    for key in ("mean", "std"):
        v = kwargs.get(key)
        if v is not None and not (isinstance(v, (list, tuple)) and len(v) == 3
                                  and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)):
            raise CheckpointError(f"{where}: model argument {key} must be three numbers")
    wm = kwargs.get("width_mult")
    if wm is not None and (isinstance(wm, bool) or not isinstance(wm, (int, float))):
        raise CheckpointError(f"{where}: model argument width_mult must be a number")
    return meta


def build_from_meta(meta: dict[str, Any], where: str | os.PathLike = "checkpoint") -> nn.Module:
    meta = check_meta(meta, where)
    try:
        return build_model(meta["arch"], meta["num_classes"], **meta.get("kwargs", {}))
    except (TypeError, ValueError) as exc:   # e.g. a width_mult that contradicts the name
        raise CheckpointError(f"{where}: cannot build its model: {exc}") from None


def save_model(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """A small, model-only checkpoint (what the zoo ships and teachers are loaded from)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save({"kind": "model", "model": model_meta(model), "state_dict": state, **extra}, path)


def recorded_config(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The training config a read checkpoint records, by section ({} when it records none).

    Sections that are not mappings (a foreign or hand-edited file) are left out, so
    ``recorded_config(ck).get("method", {}).get("push_weight")`` never raises. The one place
    that reads a checkpoint's ``config``: the zoo, the teacher cautions, the app's provenance
    line and the push view's like-for-like check all go through it.
    """
    cfg = obj.get("config")
    if not isinstance(cfg, dict):
        return {}
    return {k: v for k, v in cfg.items() if isinstance(k, str) and isinstance(v, dict)}


def push_weight(config: dict | None) -> float | None:
    """A CIARD student's push weight λ from a training config (:func:`recorded_config`, or a
    run's config); None for another method, or when the config does not say. The one reader
    of it: the zoo manifest, the probe's model list and the push view all take it from here."""
    method = (config or {}).get("method")
    if not isinstance(method, dict) or method.get("method") != "ciard":
        return None
    try:
        return float(method["push_weight"])
    except (KeyError, TypeError, ValueError):
        return None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               role: str = "student") -> nn.Module:
    """Rebuild the model in a checkpoint, in eval mode.

    For a training checkpoint, ``role="robust_teacher"`` returns the (iteratively trained)
    robust teacher it carries instead of the student. (``ciard.load_model`` also takes a run
    directory or ``zoo:NAME``.)
    """
    return model_from(load(path), path, device, role)


def model_from(obj: dict[str, Any], where: str | os.PathLike, device: str | torch.device = "cpu",
               role: str = "student") -> nn.Module:
    """The eval-mode model of a checkpoint already read (:func:`load` or :func:`load_bytes`)."""
    meta, state = obj["model"], obj["state_dict"]
    if role == "robust_teacher":
        method_state = obj.get("method_state") or {}
        if not isinstance(method_state, dict) or "robust" not in method_state:
            raise CheckpointError(f"{where} carries no robust teacher")
        meta, state = obj.get("robust_meta"), method_state["robust"]
    elif role != "student":
        raise ValueError(f"unknown role '{role}'")
    model = build_from_meta(meta, where)
    problem = _weights_problem(model, state)
    if problem:
        raise CheckpointError(f"{where}: weights do not fit {meta['arch']}: {problem}")
    model.load_state_dict(state)
    return model.to(device).eval()


def _weights_problem(model: nn.Module, state: Any) -> str | None:
    """Why ``state`` cannot be loaded into ``model`` (missing, extra or misshapen tensors), or None."""
    if not isinstance(state, dict):
        return f"they are a {type(state).__name__}, not a mapping of tensors"
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [str(k) for k in state if k not in expected]
    not_tensors = [k for k in expected if k in state and not torch.is_tensor(state[k])]
    if not_tensors:
        return f"'{not_tensors[0]}' is not a tensor"
    shaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = [f"{len(v)} {what} (e.g. '{v[0]}')" for v, what in
             ((missing, "missing"), (extra, "unexpected"), (shaped, "of another shape")) if v]
    return ", ".join(parts) or None


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_fingerprint(model) -> str:
    """sha256 of a model's state (names, dtypes, shapes and values): the same weights give the
    same fingerprint whichever file or folder they were loaded from."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
