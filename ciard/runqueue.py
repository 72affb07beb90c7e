"""The run queue: runs launched ``queued`` start one at a time (or ``concurrency`` at a time).

A 2-core machine slows to a crawl when a sweep or a seed repeat starts all its runs at once, so
such runs are written down as "queued" and started by :func:`start_queued` whenever fewer runs
than the store's concurrency are starting or running. The concurrency lives in the store's
``queue.json``: the app shows it and changes it, and a change takes effect at the next start.

Whoever launches queued runs also makes sure someone starts them: :func:`ensure_worker` starts
``python -m ciard queue`` (one per store, an exclusive ``flock`` on ``queue.worker.lock``),
which calls :func:`start_queued` every second until the queue has been empty for a while. A
sweep calls :func:`start_queued` itself while it waits for its trials. Starting is serialised
by a second lock (``queue.lock``), so two callers never both fill the last place.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from .config import Config
from .runlog import read_json, write_json
from .runs import ROOT, RunStore, reap_when_done

QUEUE_FILE = "queue.json"
DEFAULT_CONCURRENCY = 1


def concurrency(store: RunStore) -> int:
    """How many runs of this store may be starting or running at once (queued runs wait)."""
    value = read_json(store.root / QUEUE_FILE).get("concurrency", DEFAULT_CONCURRENCY)
    return value if isinstance(value, int) and value >= 1 else DEFAULT_CONCURRENCY


def set_concurrency(store: RunStore, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"concurrency = {value!r} must be a whole number of at least 1")
    store.root.mkdir(parents=True, exist_ok=True)
    write_json(store.root / QUEUE_FILE, {**read_json(store.root / QUEUE_FILE), "concurrency": value})


def queued(store: RunStore) -> list[str]:
    """The queued runs, oldest first (the order they start in)."""
    runs = [r for r in store.list() if r.state == "queued"]
    return [r.name for r in sorted(runs, key=lambda r: (r.status.get("queued", r.created), r.name))]


def start_queued(store: RunStore) -> list[str]:
    """Start the oldest queued runs while fewer than ``concurrency`` runs are active; their names."""
    with store.queue_lock():
        active = sum(r.state in ("starting", "running") for r in store.list())
        started = []
        for name in queued(store)[:max(0, concurrency(store) - active)]:
            store.start(name)
            started.append(name)
        return started


def run_worker(store: RunStore, poll: float = 1.0, idle_exit: float = 10.0) -> int:
    """Start queued runs until the queue has been empty for ``idle_exit`` s; 0, or 1 if another
    worker already serves this store."""
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / "queue.worker.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 1
        idle_since = time.time()
        while time.time() - idle_since < idle_exit:
            start_queued(store)
            if queued(store):
                idle_since = time.time()
            time.sleep(poll)
    return 0


def ensure_worker(store: RunStore) -> None:
    """Start a queue worker for the store (a second one exits at once: the first keeps the lock)."""
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / "queue.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ciard", "queue", "--runs-dir", str(Path(store.root).resolve())],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    reap_when_done(proc)


def repeat_with_seeds(store: RunStore, cfg: Config, n: int, base: str) -> list[str]:
    """Queue ``n`` runs of ``cfg`` with seeds seed+1 ... seed+n as group ``base-seeds``; their names.

    They start ``concurrency`` at a time (a worker is started for them). Each is an ordinary run
    named ``base-s<seed>``; the Runs page compares the group's mean with a 95 % interval.
    """
    if not isinstance(n, int) or not 1 <= n <= 50:
        raise ValueError(f"seeds = {n!r} must be a whole number from 1 to 50")
    group = f"{base}-seeds"
    seed0 = cfg.run.seed
    names = [store.launch(cfg.override(seed=seed0 + k), f"{base}-s{seed0 + k}", group=group, queued=True).name
             for k in range(1, n + 1)]
    ensure_worker(store)
    return names
