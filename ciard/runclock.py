"""The seconds a process has been running: wall time less the spans in which it was stopped.

A trainer's throughput (images per second) divided by plain wall time drops after every stop:
a run frozen by Ctrl-Z or SIGSTOP (``tools/train_zoo.sh pause``) for 17 minutes reported 4 img/s
instead of 58 for the rest of its session. A process cannot see its own SIGSTOP, so a daemon
thread looks at the clock every ``tick`` seconds: a gap much longer than a tick means that the
whole process did not run, and the gap (less one tick) is left out. A thread that merely waits
for the GIL is not stopped: the interpreter hands the GIL over every few milliseconds, and torch
releases it in its kernels, so a gap of ``gap`` seconds (2 s) is never an ordinary busy stretch.
"""
from __future__ import annotations

import threading
import time


class RunClock:
    """``elapsed()``: seconds since creation, less the spans the process was stopped."""

    def __init__(self, tick: float = 0.25, gap: float = 2.0) -> None:
        if not 0 < tick < gap:
            raise ValueError(f"RunClock: the gap ({gap} s) must exceed the tick ({tick} s)")
        self.tick, self.gap = tick, gap
        self._lock = threading.Lock()
        self._start = self._last = time.perf_counter()
        self._stopped = 0.0
        self._final: float | None = None   # elapsed() at close()
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="ciard-runclock", daemon=True).start()

    def _missed(self, now: float) -> float:
        """The span since the last look that the process spent stopped (0 for an ordinary tick)."""
        late = now - self._last
        return late - self.tick if late > self.gap else 0.0

    def _watch(self) -> None:
        while not self._done.wait(self.tick):
            with self._lock:
                now = time.perf_counter()
                self._stopped += self._missed(now)
                self._last = now

    def elapsed(self) -> float:
        """Seconds of running time; a stop that has just ended counts even before the thread wakes.
        After :meth:`close`, the running time at the close (nothing watches the process any more)."""
        with self._lock:
            if self._final is not None:
                return self._final
            now = time.perf_counter()
            return now - self._start - self._stopped - self._missed(now)

    @property
    def stopped(self) -> float:
        """Seconds spent stopped so far."""
        with self._lock:
            return self._stopped + self._missed(time.perf_counter())

    def close(self) -> None:
        """Stop watching; elapsed() keeps the running time reached here."""
        final = self.elapsed()
        with self._lock:
            self._final = final
        self._done.set()
