"""One trainer per run directory: an exclusive ``flock`` on the directory, held while it trains.

A second trainer for the same directory (``--resume`` on a run that is still running, Resume
pressed twice, two runs training the same quick teacher) would interleave two streams of
metrics and checkpoints. The lock is taken on the directory itself (no lock file to leave
behind); the kernel drops it when the process ends, however it ends, so a killed trainer never
leaves a stale lock.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import ConfigError


class RunBusy(ConfigError):
    """Another process holds the run directory's lock."""


class RunLock:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, wait: bool = False) -> None:
        """Take the lock (again: a no-op). Without ``wait``, RunBusy if another process keeps it
        for a second (:func:`in_use` probes hold it for microseconds; a trainer for its life)."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if wait:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                self._try(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _try(self, fd: int, patience: float = 1.0) -> None:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunBusy(f"run directory {self.path} is in use by another trainer; "
                                  f"stop that one first (or wait for it to end)") from None
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor drops the flock
            self._fd = None


def in_use(path: str | os.PathLike) -> bool:
    """Whether some trainer holds the lock of the run directory ``path`` now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)   # also drops the probe's own lock, if it got one
    return False


def free_soon(path: str | os.PathLike, patience: float = 3.0) -> bool:
    """Whether the run directory's lock is (or within ``patience`` seconds becomes) free.

    A trainer that has just been killed is already gone from the process table's point of
    view (a zombie) a moment before the kernel has torn it down and dropped its lock; a run
    store acting on "it died" must give the kernel that moment."""
    deadline = time.monotonic() + patience
    while in_use(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
