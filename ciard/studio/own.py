"""Bring your own checkpoint: an upload (kept in memory) or a typed path, for any model role.

An upload is read with :func:`ciard.checkpoints.load_bytes` (``weights_only``, metadata checked
before anything is built), never written to disk, and capped at :data:`MAX_MB`. It becomes a
spec ``upload:<sha256 prefix>`` that the sidebar's selects list beside the zoo; its bytes live
in this session's state and in a small process-wide table the model cache reads from
(:func:`bytes_of`). A typed path is checked the same way and is then an ordinary spec.

Each accepted checkpoint is described by one line (architecture, classes, provenance), and one
whose class count differs from the sidebar's dataset is refused with one line.
No Streamlit here except the session-state table, so the checks are unit-testable.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, MutableMapping

from .. import checkpoints, specs

MAX_MB = 100
UPLOAD_PREFIX = "upload:"
#: session-state key: spec -> OwnCheckpoint, the checkpoints this session brought
SESSION_KEY = "own_checkpoints"
_BYTES: OrderedDict[str, bytes] = OrderedDict()   # sha prefix -> bytes, the most recent few
_KEEP = 8
#: class counts of the datasets whose count does not depend on a path
FIXED_CLASSES = {"default": 10, "cifar10-archive": 10, "cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class OwnCheckpoint:
    spec: str            # upload:<sha> or a file path
    name: str            # the file's name as uploaded or typed
    arch: str
    num_classes: int
    line: str            # architecture, classes and provenance, for the sidebar
    data: bytes | None = None   # the upload's bytes (None for a path)


def is_upload(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(UPLOAD_PREFIX)


def bytes_of(spec: str) -> bytes:
    """The bytes of an uploaded spec; KeyError when this process no longer holds them."""
    return _BYTES[spec[len(UPLOAD_PREFIX):]]


def _remember(sha: str, data: bytes) -> None:
    _BYTES[sha] = data
    _BYTES.move_to_end(sha)
    while len(_BYTES) > _KEEP:
        _BYTES.popitem(last=False)


def dataset_classes(dataset: str, path: str | None) -> int | None:
    """The sidebar dataset's class count without decoding it (None when unknown)."""
    if dataset in FIXED_CLASSES:
        return FIXED_CLASSES[dataset]
    if dataset == "folder" and path:
        train = Path(path).expanduser() / "train"
        try:
            return sum(1 for d in train.iterdir() if d.is_dir()) or None
        except OSError:
            return None
    return None


def describe(obj: dict[str, Any]) -> str:
    """Architecture, classes and provenance of a read checkpoint, in one line."""
    meta = obj["model"]
    parts = [f"{meta['arch']}, {meta['num_classes']} classes"]
    cfg = checkpoints.recorded_config(obj)
    method = cfg.get("method", {}).get("method")
    data = cfg.get("data", {}).get("dataset")
    if method or data:
        parts.append("trained with " + " on ".join(str(v) for v in (method, data) if v))
    metrics = obj.get("metrics") if isinstance(obj.get("metrics"), dict) else {}
    if isinstance(metrics.get("epoch"), int):
        parts.append(f"epoch {metrics['epoch']}")
    acc = [f"{label} {100 * metrics[k]:.1f}%" for k, label in (("student_clean", "val clean"),
                                                                 ("student_pgd", "val PGD"))
           if isinstance(metrics.get(k), (int, float))]
    if acc:
        parts.append(", ".join(acc))
    if not cfg:
        parts.append("no training record (provenance unknown)")
    return " · ".join(parts)


def _accept(obj: dict[str, Any], where: str, expected: int | None, role: str) -> str | None:
    """Why the checkpoint cannot serve ``role`` here (one line), or None."""
    try:
        checkpoints.model_from(obj, where)        # the weights fit the architecture it names
    except checkpoints.CheckpointError as exc:
        return str(exc)
    n = obj["model"]["num_classes"]
    if expected is not None and n != expected:
        return (f"{where} has {n} classes but the sidebar's dataset has {expected}: refused "
                f"(choose a checkpoint trained on this dataset, or switch the dataset first)")
    return None


def from_upload(name: str, data: bytes, expected: int | None, role: str = "student"
                ) -> tuple[OwnCheckpoint | None, str | None]:
    """(checkpoint, None) or (None, one line saying why the upload is refused)."""
    if len(data) > MAX_MB * 2 ** 20:
        return None, f"{name} is {len(data) / 2 ** 20:.0f} MB; uploads are limited to {MAX_MB} MB"
    try:
        obj = checkpoints.load_bytes(data, name)
    except checkpoints.CheckpointError as exc:
        return None, str(exc)
    why = _accept(obj, name, expected, role)
    if why:
        return None, why
    sha = hashlib.sha256(data).hexdigest()[:16]
    _remember(sha, data)
    meta = obj["model"]
    return OwnCheckpoint(UPLOAD_PREFIX + sha, name, meta["arch"], meta["num_classes"],
                         f"uploaded {name}: {describe(obj)}", data), None


def from_path(text: str, expected: int | None, role: str = "student") -> tuple[OwnCheckpoint | None, str | None]:
    """A typed path (file, run folder or zoo:NAME) checked like an upload."""
    text = (text or "").strip()
    if not text:
        return None, "enter a checkpoint path"
    try:
        path = specs.resolve(text)
        obj = checkpoints.load(path)
    except checkpoints.CheckpointError as exc:
        return None, str(exc)
    why = _accept(obj, str(path), expected, role)
    if why:
        return None, why
    meta = obj["model"]
    return OwnCheckpoint(str(path), path.name, meta["arch"], meta["num_classes"],
                         f"{path.name}: {describe(obj)}"), None


def session_checkpoints(state: MutableMapping[str, Any]) -> dict[str, OwnCheckpoint]:
    """This session's own checkpoints (uploads re-registered if the process dropped them)."""
    own = state.get(SESSION_KEY) or {}
    for spec, ck in own.items():
        if ck.data is not None:
            _remember(spec[len(UPLOAD_PREFIX):], ck.data)
    return own


def add(state: MutableMapping[str, Any], ck: OwnCheckpoint) -> None:
    state[SESSION_KEY] = {**(state.get(SESSION_KEY) or {}), ck.spec: ck}
