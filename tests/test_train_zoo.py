"""tools/train_zoo.sh, the zoo chain that runs unattended across sessions: its script parses, a
typo is refused before anything happens, and what `park` keeps is what `unpark` brings back
(in a scratch clone, with fake runs: nothing is trained here)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "train_zoo.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None,
                                reason="needs bash and git")


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable, "PYTHONPATH": str(repo)}
    return subprocess.run(["bash", str(repo / "tools" / "train_zoo.sh"), *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_script_parses():
    res = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.fixture
def scratch(tmp_path):
    """A clone of this checkout's files (the script, the package, the manifest), no zoo-wip."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "tools")
    shutil.copytree(ROOT / "ciard", repo / "ciard", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "checkpoints").mkdir()
    shutil.copy(ROOT / "checkpoints" / "manifest.json", repo / "checkpoints")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    return repo


def _fake_run(repo: Path, name: str, state: str, files=(), **status):
    d = repo / "runs" / "zoo" / name
    d.mkdir(parents=True)
    (d / "status.json").write_text(json.dumps({"state": state, **status}))
    (d / "config.json").write_text("{}")
    for f in files:
        (d / f).write_text(f)
    return d


def test_a_typo_is_refused_before_anything_is_restored(scratch):
    (scratch / "zoo-wip" / "parked").mkdir(parents=True)
    (scratch / "zoo-wip" / "parked" / "last.pt").write_text("x")
    res = _run(scratch, "clean", "robst")
    assert res.returncode == 2 and "unknown step 'robst'" in res.stderr
    assert not (scratch / "runs").exists()
    res = _run(scratch)
    assert res.returncode == 2 and "usage:" in res.stderr


def test_park_keeps_what_unpark_restores(scratch):
    _fake_run(scratch, "robust-x", "stopped", ("last.pt", "best.pt", "metrics.jsonl", "train-seconds", "junk.bin"), step=7)
    _fake_run(scratch, "clean-x", "finished", ("best.pt", "eval-full.partial.json", "last.pt"))
    _fake_run(scratch, "lr-ard-1.0", "failed", ("metrics.jsonl",), error="training diverged at step 3: loss is nan")
    _fake_run(scratch, "ciard-x", "finished", ("best.pt", "registered", "eval-aa.partial.json"))
    _fake_run(scratch, "done-x", "finished", ("best.pt", "registered", "eval-aa.partial.json", "aa-merged"))
    res = _run(scratch, "park")
    assert res.returncode == 0, res.stderr
    wip = scratch / "zoo-wip"
    kept = {p.relative_to(wip).as_posix() for p in wip.rglob("*") if p.is_file()}
    assert kept == {
        # resumable: its checkpoint and its best weights (a resumed run keeps its best score)
        "robust-x/last.pt", "robust-x/best.pt", "robust-x/config.json", "robust-x/metrics.jsonl",
        "robust-x/status.json", "robust-x/train-seconds",
        # trained, not registered: its best weights and the attacks evaluated so far
        "clean-x/best.pt", "clean-x/config.json", "clean-x/status.json", "clean-x/eval-full.partial.json",
        # diverged: its record, so that the next chain does not train it again
        "lr-ard-1.0/config.json", "lr-ard-1.0/status.json", "lr-ard-1.0/metrics.jsonl",
        # registered, its AutoAttack evaluation not merged yet: the attacks so far, apart
        "aa-ciard-x/eval-aa.partial.json",
    }
    assert (scratch / "runs" / "zoo" / "PARKING").is_file()   # a chain still running starts nothing new

    shutil.rmtree(scratch / "runs")   # a fresh clone
    res = _run(scratch, "unpark")
    assert res.returncode == 0, res.stderr
    runs = scratch / "runs" / "zoo"
    back = {p.relative_to(runs).as_posix() for p in runs.rglob("*") if p.is_file()}
    assert back == {k.replace("aa-ciard-x/", "ciard-x/") for k in kept}
    assert json.loads((runs / "robust-x" / "status.json").read_text())["step"] == 7
    # what is there already is not overwritten
    (runs / "robust-x" / "last.pt").write_text("newer")
    assert _run(scratch, "unpark").returncode == 0
    assert (runs / "robust-x" / "last.pt").read_text() == "newer"


def test_park_stops_an_evaluation_started_in_the_background(scratch):
    """The chain runs in the background (nohup ... &), so its evaluations ignore SIGINT: `park`
    must still stop them (their finished attacks are on disk). A stand-in process with the
    evaluation's command line, SIGINT ignored as bash does for background jobs, in this checkout."""
    stand_in = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(120)"
                "  # ciard eval --checkpoint runs/zoo/robust-airbench94")
    proc = subprocess.Popen([sys.executable, "-c", stand_in], cwd=scratch)
    try:
        res = _run(scratch, "park")
        assert res.returncode == 0, res.stderr
        proc.wait(timeout=30)   # stopped by park, not by the end of its sleep
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
