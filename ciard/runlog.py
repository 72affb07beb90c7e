"""A run directory: what a training process writes for people and pages to read.

Layout of ``<out_dir>/<name>/``::

    config.json      the validated Config
    status.json      state (running | finished | stopped | failed), pid, heartbeat, progress
    metrics.jsonl    one JSON object per line: {"kind": "step" | "epoch" | "final", ...}
    train.log        the process's log
    STOP             created by anyone who wants the run to stop; honoured between steps
    last.pt          full training checkpoint (resume from it)
    best.pt          the student with the best validation score (model only)

Each write is flushed as it happens, and status.json is replaced atomically, so a reader
never sees half a record and a killed process loses nothing written before its last step.

One trainer at a time: it holds the directory's lock (:mod:`ciard.runlock`) while it trains.
Atomic writes go through ``.<name>.*.tmp`` files, which a killed process can leave behind;
the next trainer to hold the lock removes them (:meth:`RunDir.remove_stale_temps`).

Readers use the functions at the end of this file and nothing else: :func:`read_json` (a small
JSON file such as status.json), :func:`read_new_records` (follow metrics.jsonl by byte offset
and inode), :func:`tail_lines` (the end of a log); writers of small JSON files outside a
trainer (the run store, the zoo's manifest) use :func:`write_atomic` / :func:`write_json`.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .names import check_run_name
from .runlock import RunLock

#: the files a trainer replaces atomically (here and in :mod:`ciard.checkpoints`), through
#: temporary files named ``.<file>.<random>.tmp``
ATOMIC_FILES = ("last.pt", "best.pt", "robust_teacher.pt", "status.json", "config.json", "metrics.jsonl")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` at once: a temp file beside it, then a rename over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary, shareable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        #: whether this object made the directory (a trainer that fails before it starts removes it)
        try:
            self.created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run directory {self.path}: {exc.strerror}") from None
        self._lock = RunLock(self.path)
        self.metrics_path = self.path / "metrics.jsonl"
        self.status_path = self.path / "status.json"
        self.stop_path = self.path / "STOP"
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.log_path = self.path / "train.log"
        self._status: dict[str, Any] = {}
        self._metrics_file = None

    @staticmethod
    def new(out_dir: str | os.PathLike, name: str | None) -> "RunDir":
        """A fresh directory: ``name``, or ``name-2``, ``name-3``... if taken.

        ``mkdir`` without ``exist_ok`` either creates the directory or fails, so two processes
        asking for the same name at the same moment always get two directories.
        """
        base = check_run_name(name or time.strftime("run-%Y%m%d-%H%M%S"))
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run store {out}: {exc.strerror}") from None
        for i in range(1, 100_000):
            suffix = "" if i == 1 else f"-{i}"
            candidate = out / (base[:100 - len(suffix)] + suffix)
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot create the run directory {candidate}: {exc.strerror}") from None
            run = RunDir(candidate)
            run.created = True
            return run
        raise ConfigError(f"every name from '{base}' to '{base}-99999' is taken in {out}")

    # -- one trainer at a time --------------------------------------------------------
    def lock(self, wait: bool = False) -> None:
        """Hold the directory's lock (RunBusy if another trainer has it); again: a no-op."""
        self._lock.acquire(wait)

    def unlock(self) -> None:
        self._lock.release()

    def remove_stale_temps(self) -> list[str]:
        """Delete the temporary files of atomic writes that a killed process left (lock held)."""
        if not self._lock.held:
            raise RuntimeError("remove_stale_temps needs the run directory's lock")
        removed = []
        for name in ATOMIC_FILES:
            for tmp in self.path.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp.name)
        return sorted(removed)

    # -- metrics --------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        if self._metrics_file is None:
            self._metrics_file = open(self.metrics_path, "a", buffering=1)
        self._metrics_file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._metrics_file.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every whole record, up to the first damaged line (a line cut by a kill)."""
        if not self.metrics_path.is_file():
            return []
        out = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill; everything before it is whole
                break
        return out

    def truncate_metrics(self, step: int, epoch: int) -> None:
        """On resume: drop records after the checkpoint (they will be recomputed identically).

        ``step`` and ``epoch`` are the checkpoint's counts of completed steps and epochs; epoch
        records are numbered from 1, so the record of the last completed epoch is ``epoch``.
        ``(0, 0)``, a resume without a checkpoint, keeps nothing.
        """
        keep = [r for r in self.read_metrics()
                if (r.get("kind") == "step" and r["step"] <= step)
                or (r.get("kind") == "epoch" and r["epoch"] <= epoch)]
        write_atomic(self.metrics_path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep))

    # -- status -----------------------------------------------------------------------
    def set_status(self, **fields: Any) -> None:
        self._status.update(fields)
        self._status.update(pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time())
        write_atomic(self.status_path, json.dumps(self._status, indent=1))

    def read_heartbeat(self) -> float:
        """When this process last wrote its status (0 if never)."""
        return float(self._status.get("heartbeat", 0.0))

    def read_status(self) -> dict[str, Any]:
        return read_json(self.status_path)

    def write_config(self, config_json: str) -> None:
        write_atomic(self.path / "config.json", config_json)

    # -- stop requests -------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stop_path.touch()

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def clear_stop(self) -> None:
        self.stop_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None


# -- reading a run directory (pages, the run store, the resolver of quick teachers) -------------
#: a student that predicts one class for at least this share of the validation images has
#: collapsed (a class-balanced split: chance accuracy, whatever the number of classes)
COLLAPSE_SHARE = 0.9


def collapse_note(record: dict[str, Any]) -> str | None:
    """What to say about an epoch record whose student has collapsed to one class (None if it
    has not, or if the record predates the measure). The trainer logs it; the Train page shows it."""
    share, epoch = record.get("student_top_class_share"), record.get("epoch")
    if not isinstance(share, (int, float)) or not share >= COLLAPSE_SHARE:   # a nan (a table's gap) too
        return None
    epoch = f"{epoch:g}" if isinstance(epoch, (int, float)) and epoch == epoch else "?"
    return (f"after epoch {epoch} the student predicts one class for {100 * share:.0f}% of "
            "the validation images: it has collapsed, and its accuracy is chance. A learning rate too large "
            "for the method's loss scale does this (DGAD's KL is summed over classes, PeerAiD's peer trains "
            "with full-scale cross-entropy: at lr 1.0 both collapsed where class-averaged KL methods trained); "
            "try a smaller learning rate, e.g. a tenth")


def read_json(path: Path) -> dict[str, Any]:
    """A small JSON object of a run (status.json, config.json...), or {} if missing or half-written."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def write_json(path: Path, obj: dict[str, Any]) -> None:
    write_atomic(Path(path), json.dumps(obj, indent=1))


def read_state(run_path: Path) -> str | None:
    """The state a run's trainer last wrote (running, finished, ...), or None."""
    return read_json(Path(run_path) / "status.json").get("state")


def read_new_records(path: Path, offset: int = 0, inode: int | None = None,
                     skip_prefix: bytes | None = None) -> tuple[list[dict[str, Any]], int, int | None, bool]:
    """Follow a metrics.jsonl: (records after ``offset``, new offset, the file's inode, restarted).

    Only whole lines are read: a line still being written waits for the next call. A file
    with another inode (a resume rewrites it) or shorter than ``offset`` (truncated in place)
    is read again from the top, and ``restarted`` says so: what the caller holds is stale.
    Lines starting with ``skip_prefix`` are passed over without parsing (e.g. step records).
    """
    try:
        fh = open(path, "rb")
    except OSError:
        return [], 0, None, inode is not None or offset > 0
    with fh:
        now = os.fstat(fh.fileno())
        restarted = (inode is not None and now.st_ino != inode) or offset > now.st_size
        if restarted:
            offset = 0
        fh.seek(offset)
        chunk = fh.read()
    end = chunk.rfind(b"\n") + 1
    records = []
    for line in chunk[:end].splitlines():
        if skip_prefix is not None and line.startswith(skip_prefix):
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, offset + end, now.st_ino, restarted


def tail_lines(path: Path, lines: int, max_bytes: int = 32 * 1024) -> str:
    """The last ``lines`` lines of a log file ('' if it is missing or empty)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
