"""Ctrl-C / SIGTERM on a real `python -m ciard train` process.

One signal asks for a stop: the step finishes, a checkpoint is written, the run says
"stopped" and exits 0. A second signal means "now": the run still says "stopped" (with why),
the process exits 130 with one line, and resume continues from the last checkpoint.
"""
import json
import os
import signal
import subprocess
import sys
import time

from test_distributed import COMMON, ROOT, _wait_for_steps, records


def _start(tmp_path, name, epochs=20, stderr=subprocess.PIPE, subset=2048):
    cmd = [sys.executable, "-m", "ciard", "train", *COMMON, "--train-subset", str(subset), "--epochs", str(epochs),
           "--checkpoint-every", "4", "--out-dir", str(tmp_path), "--name", name]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _wait_until(ready, what: str, timeout: float = 60) -> None:
    """Poll ``ready()`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def _status(run_dir):
    return json.loads((run_dir / "status.json").read_text())


def test_one_signal_stops_cleanly_with_a_checkpoint(tmp_path):
    proc = _start(tmp_path, "sigterm")
    try:
        _wait_for_steps(tmp_path / "sigterm", 3, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    status = _status(tmp_path / "sigterm")
    assert status["state"] == "stopped" and "error" not in status, status
    assert (tmp_path / "sigterm" / "last.pt").is_file()
    assert "stop requested (signal 15)" in err
    steps = [r["step"] for r in records(tmp_path / "sigterm", "step")]
    assert steps == list(range(1, status["step"] + 1))


def test_a_second_signal_interrupts_at_once_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "twice"
    log = tmp_path / "twice.stderr"
    with open(log, "w") as stderr:
        proc = _start(tmp_path, "twice", epochs=2, stderr=stderr, subset=512)   # 16 steps: a short resume
    try:
        _wait_for_steps(run_dir, 6, proc)   # a checkpoint at step 4 exists
        _wait_until((run_dir / "last.pt").is_file, "checkpoint")
        proc.send_signal(signal.SIGINT)
        # the second signal once the first one is taken (two at once are delivered as one)
        _wait_until(lambda: "stop requested" in log.read_text(), "'stop requested' on stderr")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = log.read_text()
    status = _status(run_dir)
    assert proc.returncode == 130, err[-2000:]
    assert err.rstrip().endswith("interrupted"), err[-500:]
    assert "Traceback" not in err, err[-2000:]
    assert status["state"] == "stopped" and "interrupted" in status["error"], status
    # resume continues from the checkpoint; a short resumed run finishes
    resumed = subprocess.run([sys.executable, "-m", "ciard", "train", "--resume", str(run_dir), "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
