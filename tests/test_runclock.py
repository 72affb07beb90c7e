"""ciard.runclock: the trainer's throughput clock leaves out the spans its process was stopped
(Ctrl-Z, SIGSTOP, `tools/train_zoo.sh pause`) and nothing else."""
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ciard.runclock import RunClock

ROOT = Path(__file__).resolve().parents[1]


def test_busy_work_is_all_counted():
    """No false stop: torch work and pure-Python work for about a second each are running time."""
    clock = RunClock()
    t0 = time.perf_counter()
    a = torch.rand(256, 256)
    while time.perf_counter() - t0 < 1.0:
        a = (a @ a).tanh()
    n = 0
    while time.perf_counter() - t0 < 2.0:
        n += sum(range(1000))
    wall = time.perf_counter() - t0
    assert clock.stopped == 0.0
    assert abs(clock.elapsed() - wall) < 0.05
    clock.close()
    closed = clock.elapsed()
    time.sleep(0.3)
    assert clock.elapsed() == closed   # the running time reached at the close


def test_a_stopped_process_leaves_its_stop_out():
    """A child counts 5 s of wall time, 3 of them stopped by SIGSTOP: about 2 s of running time."""
    child = textwrap.dedent("""
        import sys, time
        from ciard.runclock import RunClock
        clock = RunClock()
        t0 = time.perf_counter()
        print("ready", flush=True)
        while time.perf_counter() - t0 < 5.0:
            time.sleep(0.05)
        print(clock.elapsed(), time.perf_counter() - t0, clock.stopped, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(3.0)
        proc.send_signal(signal.SIGCONT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed, wall, stopped = map(float, out.split())
    assert wall >= 5.0
    assert 2.6 <= stopped <= 3.4, stopped
    assert abs(elapsed - (wall - stopped)) < 1e-6 + 0.3
    assert 1.6 <= elapsed <= 2.4, elapsed


def test_the_gap_must_exceed_the_tick():
    with pytest.raises(ValueError, match="must exceed the tick"):
        RunClock(tick=1.0, gap=0.5)
