"""The run store: every training run on disk, launched as its own OS process.

A run is a directory under the store's root (``runs/`` by default), written by its trainer
process as described in :mod:`ciard.runlog` (config.json, status.json with a heartbeat,
metrics.jsonl, train.log, checkpoints) plus ``console.log`` (the process's own output,
tracebacks included). Pages and the CLI read the directory; they never talk to a running
trainer. Because everything is on disk, a browser refresh, a second tab or a restarted
Streamlit server sees the same runs, and a run keeps going when its page goes away.

Why files rather than one SQLite database: each run has exactly one writer (its trainer),
appends are crash-safe line by line (a killed process can only cut its last line, which
readers skip), concurrent runs never contend for a lock, readers follow a run incrementally
by byte offset, and a run can be inspected, copied or deleted with ordinary tools.

A run whose status says it is running but whose process is gone (killed, crashed, machine
restarted) is reported as ``failed`` with the end of its console log.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, validate
from .names import run_path
from .resources import PACKAGE_PARENT
from .runlock import free_soon
from .runlog import RunDir, read_json, read_new_records, tail_lines, write_json

#: where trainer processes start (the package is importable from there, checkout or installed)
ROOT = PACKAGE_PARENT
ACTIVE_FILE = "active.json"
PROCESS_FILE = "process.json"
GROUP_FILE = "group.json"
STATES = ("queued", "starting", "running", "stopped", "finished", "failed")


def pid_alive(pid: int | None) -> bool:
    """Whether a process exists and is not a zombie; reaps it if it is our finished child."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to a signal-0 probe
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers signal 0
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def reap_when_done(proc: subprocess.Popen) -> None:
    """Collect the trainer's exit status as soon as it ends, so it never lingers ``<defunct>``.

    A daemon thread per trainer blocks in ``wait()``; it costs nothing while the trainer runs and
    does not keep the app (or a test) from exiting. Without it a finished trainer stays a zombie
    under the Streamlit server until someone happens to look at that run.
    """
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


@dataclass
class RunInfo:
    name: str
    path: Path
    config: dict[str, Any]
    status: dict[str, Any]
    state: str
    created: float
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    error: str | None = None

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def heartbeat_age(self) -> float | None:
        hb = self.status.get("heartbeat")
        return None if hb is None else max(0.0, time.time() - hb)

    @property
    def method(self) -> str:
        return self.config.get("method", {}).get("method", "?")

    @property
    def student(self) -> str:
        return self.config.get("model", {}).get("student", "?")

    @property
    def group(self) -> str | None:
        """The group a run was launched in (a seed repeat), else None."""
        return read_json(self.path / GROUP_FILE).get("group")

    @property
    def checkpoint(self) -> Path | None:
        best = self.path / "best.pt"
        return best if best.is_file() else None


class RunStore:
    def __init__(self, root: str | os.PathLike = "runs") -> None:
        self.root = Path(root)

    # -- reading ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The runs in the store: directories under a valid run name, in the store, with a config.json."""
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            try:
                if (self.path(p.name) / "config.json").is_file():
                    out.append(p.name)
            except KeyError:   # not a run name, or a link out of the store: not one of ours
                continue
        return sorted(out)

    def list(self) -> list[RunInfo]:
        runs = [self.get(n) for n in self.names()]
        return sorted(runs, key=lambda r: r.created, reverse=True)

    def path(self, name: str) -> Path:
        """The directory of run ``name``; KeyError for a name that is not a run name of this store."""
        try:
            return run_path(self.root, name)
        except ConfigError as exc:
            raise KeyError(str(exc)) from None

    def get(self, name: str) -> RunInfo:
        path = self.path(name)
        if not (path / "config.json").is_file():
            raise KeyError(f"no run named '{name}' in {self.root}")
        config = read_json(path / "config.json")
        status = read_json(path / "status.json")
        process = read_json(path / PROCESS_FILE)
        state = status.get("state", "starting")
        error = status.get("error") or None         # what the trainer (or the queue) wrote down
        pid = status.get("pid") if state == "running" else process.get("pid")
        if state in ("starting", "running") and pid is not None and not pid_alive(pid):
            state, error = "failed", "the training process is gone (killed or crashed)"
        elif state == "starting" and pid is None and \
                time.time() - (path / "config.json").stat().st_mtime > 60:
            state, error = "failed", "the training process never started"
        created = process.get("first_launched") or status.get("started") or (path / "config.json").stat().st_mtime
        return RunInfo(name, path, config, status, state, float(created), int(status.get("step", 0)),
                       int(status.get("total_steps", 0)), int(status.get("epoch", 0)), error)

    @staticmethod
    def tail_records(path: Path, n: int) -> list[dict[str, Any]]:
        f = path / "metrics.jsonl"
        if not f.is_file():
            return []
        with open(f, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            lines = fh.read().decode(errors="replace").splitlines()[-n:]
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def read_metrics(self, name: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Records appended since byte ``offset``, and the new offset (follow a run cheaply).

        Only whole lines are returned: a line still being written stays for the next call.
        """
        records, offset, _, _ = read_new_records(self.path(name) / "metrics.jsonl", offset)
        return records, offset

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The end of the process's console output (tracebacks included), else of train.log."""
        for fname in ("console.log", "train.log"):
            text = tail_lines(self.path(name) / fname, lines)
            if text:
                return text
        return ""

    # -- acting -------------------------------------------------------------------------
    def launch(self, cfg: Config, name: str | None = None, *, group: str | None = None,
               queued: bool = False) -> RunInfo:
        """Validate, create the run directory and start ``python -m ciard train`` for it.

        ``queued``: only write it down as "queued"; :mod:`ciard.runqueue` starts it when fewer
        runs are active than the store's concurrency. ``group``: the runs launched together (a
        seed repeat) share it.
        """
        cfg = validate(cfg.override(out_dir=str(self.root), progress=False))
        run = RunDir.new(self.root, name or cfg.run.name or f"{cfg.method.method}-{cfg.model.student}")
        cfg = cfg.override(name=run.path.name)
        run.write_config(cfg.to_json())
        if group:
            write_json(run.path / GROUP_FILE, {"group": group})
        if queued:
            write_json(run.status_path, {"state": "queued", "queued": time.time()})
        else:
            self.start(run.path.name)
        return self.get(run.path.name)

    def start(self, name: str) -> None:
        """Start the trainer of a new (or queued) run."""
        run = RunDir(self.path(name))
        self._spawn(run, ["--config", str(run.path / "config.json"), "--run-dir", str(run.path)])

    def resume(self, name: str) -> RunInfo:
        info = self.get(name)
        if info.state in ("running", "starting") or not free_soon(info.path):
            raise ValueError(f"run '{name}' is already running")
        if info.state == "finished":
            raise ValueError(f"run '{name}' has finished; nothing to resume")
        if info.state == "queued":
            raise ValueError(f"run '{name}' is queued; it starts when a place is free")
        if not (info.path / "last.pt").is_file():
            raise ValueError(f"run '{name}' has no checkpoint to resume from")
        self._spawn(RunDir(info.path), ["--resume", str(info.path)])
        return self.get(name)

    def _spawn(self, run: RunDir, args: list[str]) -> None:
        """Start the trainer in its own session (a page refresh or server stop never touches it).

        The status says "starting" until the trainer writes its own; the trainer's pid goes
        to process.json, so a process that dies before its first status is still noticed.
        """
        run.clear_stop()  # a stop request belongs to the process it was made for
        old = run.read_status()
        kept = {k: v for k, v in old.items() if k in ("step", "total_steps", "epoch", "started")}
        write_json(run.status_path, {**kept, "state": "starting", "heartbeat": time.time()})
        console = open(run.path / "console.log", "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "ciard", "train", *args, "--no-progress"],
                                cwd=ROOT, stdout=console, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        console.close()
        reap_when_done(proc)
        first = read_json(run.path / PROCESS_FILE).get("first_launched", time.time())
        write_json(run.path / PROCESS_FILE, {"pid": proc.pid, "launched": time.time(),
                                              "first_launched": first, "argv": args})

    @contextlib.contextmanager
    def queue_lock(self):
        """Held while the queue starts runs (:mod:`ciard.runqueue`) or a queued run is taken off it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "queue.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def stop(self, name: str) -> None:
        """Ask the trainer to stop after its current step (it writes a checkpoint first); a
        queued run leaves the queue (stopped, never started)."""
        if self.get(name).state == "queued":
            with self.queue_lock():      # the queue may be starting it right now
                if self.get(name).state == "queued":
                    write_json(self.path(name) / "status.json",
                               {"state": "stopped", "error": "taken off the queue before it started"})
                    return
        RunDir(self.get(name).path).request_stop()   # running (or just started by the queue)

    def kill(self, name: str) -> None:
        """End the process now (SIGKILL to its session): the last checkpoint is what remains."""
        info = self.get(name)
        pid = info.status.get("pid") or read_json(info.path / PROCESS_FILE).get("pid")
        if pid and pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def delete(self, name: str) -> None:
        info = self.get(name)
        if info.state in ("running", "starting") or not free_soon(info.path):
            raise ValueError(f"run '{name}' is running; stop it first")
        shutil.rmtree(info.path)
        active = self.active()
        if active.get("run") == name:
            (self.root / ACTIVE_FILE).unlink(missing_ok=True)

    # -- the promoted student -------------------------------------------------------------
    def promote(self, name: str) -> Path:
        """Make this run's best student the one the other pages use."""
        info = self.get(name)
        if info.checkpoint is None:
            raise ValueError(f"run '{name}' has no student checkpoint yet (best.pt appears after an epoch)")
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / ACTIVE_FILE, {"run": name, "student": str(info.checkpoint),
                                              "promoted": time.time()})
        return info.checkpoint

    def active(self) -> dict[str, Any]:
        return read_json(self.root / ACTIVE_FILE)
