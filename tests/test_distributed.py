"""Data-parallel training under torchrun: 2 gloo processes on the CPU, as a user runs them.

What legitimately differs from one process at the same global batch: BatchNorm batch
statistics inside a forward pass are per rank (32 images instead of 64), and the attacks'
random starts and the augmentation draw from per-rank streams. Gradients, the ITT teacher's
updates, BatchNorm running statistics and CIARD's scalars are averaged, so the ranks stay
identical (checked each epoch: ``rank_divergence``) and the loss follows the 1-process curve.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proc_support import descendants

ROOT = Path(__file__).resolve().parents[1]

# push autoscale off: its power of ten jumps when a loss crosses 0.1, 0.01..., which turns
# the tiny start-noise differences into factor-10 differences on single steps
COMMON = ["--student", "smallcnn", "--batch-size", "64", "--pgd-steps", "2", "--precision", "fp32",
          "--compile", "off", "--eval-size", "64", "--eval-pgd-steps", "2", "--test-size", "0",
          "--itt-warmup", "0", "--itt-lr", "1e-3", "--no-push-autoscale", "--log-every", "1",
          "--clean-teacher", "zoo:demo-clean-resnet20", "--robust-teacher", "zoo:demo-robust-resnet20",
          "--no-progress"]


def train_cmd(procs: int, *args: str) -> list[str]:
    head = [sys.executable, "-m", "ciard", "train"] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
         "-m", "ciard", "train"]
    return head + COMMON + list(args)


def run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def why(res) -> str:
    """The workers' own error lines (torchrun's summary alone does not say what happened)."""
    lines = [ln for ln in res.stderr.splitlines() if "Error" in ln or "error" in ln or "terminate" in ln]
    return "\n".join(lines[-20:]) + "\n" + res.stderr[-1500:]


def records(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_two_processes_follow_the_one_process_trajectory(tmp_path):
    data = ["--train-subset", "512", "--epochs", "2", "--no-augment", "--out-dir", str(tmp_path)]
    one = run(train_cmd(1, *data, "--threads", "1", "--name", "one"))
    assert one.returncode == 0, why(one)
    two = run(train_cmd(2, *data, "--name", "two"))
    assert two.returncode == 0, why(two)
    assert "2 processes (gloo)" in two.stderr

    a, b = records(tmp_path / "one", "step"), records(tmp_path / "two", "step")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 17))   # same steps, once each
    rel = [abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b)]
    assert statistics.median(rel) < 0.05, rel
    assert max(rel) < 0.25, rel
    for key in ("loss_teacher", "loss_nat", "loss_adv"):   # ITT teacher and KD terms follow too
        assert statistics.median(abs(x[key] - y[key]) / abs(x[key]) for x, y in zip(a, b)) < 0.05, key
    for key in ("tau_adv", "tau_nat", "lr", "teacher_lr"):
        assert max(abs(x[key] - y[key]) for x, y in zip(a, b)) < 1e-2, key
    # the ranks hold identical students, teachers and scalars after every epoch
    epochs = records(tmp_path / "two", "epoch")
    assert len(epochs) == 2 and all(e["processes"] == 2 and e["rank_divergence"] == 0.0 for e in epochs)
    # one writer: rank 0's directory only, no second run directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    assert (tmp_path / "two" / "best.pt").is_file() and (tmp_path / "two" / "robust_teacher.pt").is_file()


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The worker of ``rank`` that torchrun (``launcher``) started: found by its RANK variable."""
    for pid in descendants(launcher.pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


def _wait_for_steps(run_dir: Path, steps: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        if (run_dir / "metrics.jsonl").is_file() and len(records(run_dir, "step")) >= steps:
            return
        time.sleep(0.3)
    raise AssertionError(f"no {steps} steps in {timeout} s")


def test_a_killed_rank_fails_the_job_instead_of_hanging(tmp_path):
    cmd = train_cmd(2, "--train-subset", "2048", "--epochs", "20", "--out-dir", str(tmp_path), "--name", "killed")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait_for_steps(tmp_path / "killed", 3, proc)
        pid = _rank_pid(proc, 1)
        assert pid, "rank 1 not found"
        os.kill(pid, signal.SIGKILL)
        t0 = time.time()
        _, err = proc.communicate(timeout=120)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert took < 60, f"the job took {took:.0f} s to fail"
    status = json.loads((tmp_path / "killed" / "status.json").read_text())
    assert status["state"] == "failed" and status["error"], (status, err[-3000:])
    assert "SIGKILL" in err or "Signal 9" in err


def test_stop_and_resume_under_torchrun_lose_and_repeat_no_step(tmp_path):
    run_dir = tmp_path / "resumed"
    cmd = train_cmd(2, "--train-subset", "512", "--epochs", "2", "--checkpoint-every", "4",
                    "--out-dir", str(tmp_path), "--name", "resumed")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait_for_steps(run_dir, 5, proc)
        (run_dir / "STOP").write_text("")          # what the app's Stop button writes
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and 5 <= status["step"] < 16, status
    stopped_at = status["step"]

    resumed = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "ciard", "train", "--resume", str(run_dir)])
    assert resumed.returncode == 0, why(resumed)
    assert f"resumed {run_dir}" in resumed.stderr
    steps = [r["step"] for r in records(run_dir, "step")]
    assert steps == list(range(1, 17)), steps   # 2 epochs x 8 steps, each exactly once
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert stopped_at < 16
    assert all(e["rank_divergence"] == 0.0 for e in records(run_dir, "epoch"))


@pytest.mark.parametrize("batch", ["63"])
def test_a_global_batch_not_divisible_by_the_processes_is_refused(tmp_path, batch):
    res = run(train_cmd(2, "--train-subset", "256", "--epochs", "1", "--batch-size", batch,
                        "--out-dir", str(tmp_path), "--name", "odd"))
    assert res.returncode != 0
    assert "must be divisible by the 2 processes" in res.stderr
