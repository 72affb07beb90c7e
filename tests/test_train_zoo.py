"""tools/train_zoo.sh, the zoo chain that runs unattended across sessions: its script parses, a
typo is refused before anything happens, and what `park` keeps is what `unpark` brings back
(in a scratch clone, with fake runs: nothing is trained here)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
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
    _fake_run(scratch, "lr-ard-0.5", "finished", ("metrics.jsonl", "best.pt", "last.pt"))
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
        # a finished pilot: its record is its result (no weights in git)
        "lr-ard-0.5/config.json", "lr-ard-0.5/status.json", "lr-ard-0.5/metrics.jsonl",
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


def test_park_stops_a_trainer_the_chain_starts_while_park_waits(scratch):
    """The race seen in a real session: the chain passed its `parking` check just before PARKING
    appeared and started one more pilot, which reports "running" only once loaded. `park` must
    keep stopping runs until the chain has exited, not look once. A stand-in chain (bash running
    a file named train_zoo.sh, in this checkout) starts its "trainer" (a `... ciard train`
    process) 3 s after park began; the trainer stops only when asked (STOP), as the real one does."""
    trainer = r'''
import json, os, signal, socket, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.SIG_IGN)
run = Path("runs/zoo/lr-late-0.5"); run.mkdir(parents=True, exist_ok=True)
(run / "config.json").write_text("{}")
(run / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "step": 0}))
for step in range(1, 120):
    time.sleep(0.5)
    if (run / "STOP").exists():
        (run / "last.pt").write_text("x")
        (run / "status.json").write_text(json.dumps({"state": "stopped", "step": step}))
        sys.exit(0)
sys.exit(7)   # never asked to stop
'''
    chain = scratch / "stand-in" / "train_zoo.sh"
    chain.parent.mkdir()
    chain.write_text('trap "" INT\nsleep 3\n"$1" -c "$2" ciard train\n')
    (scratch / "runs" / "zoo").mkdir(parents=True)
    proc = subprocess.Popen(["bash", str(chain), sys.executable, trainer], cwd=scratch)
    try:
        res = _run(scratch, "park")
        assert res.returncode == 0, res.stderr
        assert proc.wait(timeout=5) == 0   # asked to stop by park (7: it never was)
        assert "parked lr-late-0.5 at step" in res.stdout, res.stdout
        assert (scratch / "zoo-wip" / "lr-late-0.5" / "last.pt").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_park_does_not_wait_for_a_run_whose_trainer_is_gone(scratch):
    """A trainer killed outright leaves status "running": park sees its pid is gone, or is now
    some other process (pids are reused), and goes on; nor does it wait for a process that only
    names the script (a pager, an editor)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    _fake_run(scratch, "robust-killed", "running", ("last.pt",), pid=int(dead), host=socket.gethostname(), step=3)
    other = subprocess.Popen(["bash", "-c", "sleep 60; : less tools/train_zoo.sh"], cwd=scratch)
    try:
        _fake_run(scratch, "clean-reused", "running", ("last.pt",), pid=other.pid, host=socket.gethostname(), step=4)
        res = _run(scratch, "park")
        assert res.returncode == 0, res.stderr
        assert other.poll() is None        # park returned long before that process ends
    finally:
        other.kill()
    assert "parked robust-killed at step 3" in res.stdout and "parked clean-reused at step 4" in res.stdout
    assert not any((scratch / "runs" / "zoo" / n / "STOP").exists() for n in ("robust-killed", "clean-reused"))


# A stand-in for the interpreter the chain calls ($PY): `-m ciard train` writes a pilot run the way
# the trainer does (status, config, one validation record) without training; everything else runs
# in the real interpreter. FAKE_STOP names a pilot stopped (as by park) the first time it starts;
# lr 1.0 diverges for ard. Every trainer call is logged to FAKE_LOG.
FAKE_PY = r'''
import json, os, subprocess, sys
from pathlib import Path
args = sys.argv[1:]
if args[:3] != ["-m", "ciard", "train"]:
    sys.exit(subprocess.call([REAL, *args]))
def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default
if "--resume" in args:
    run = Path(flag("--resume"))
    config = json.loads((run / "config.json").read_text())
else:
    run = Path(flag("--out-dir")) / flag("--name")
    if run.exists():                # the trainer never writes into a directory it did not make
        run = run.with_name(run.name + "-2")
    run.mkdir(parents=True)
    config = {"optim": {"epochs": 2, "batch_size": 128, "lr_schedule": "cosine", "lr": float(flag("--lr"))},
              "data": {"train_subset": 10000}, "attack": {"pgd_steps": 5},
              "method": {"method": flag("--method")},
              "run": {"name": run.name, "eval_size": 1000, "eval_pgd_steps": 10, "seed": 0,
                      "precision": flag("--precision", "auto")}}
    (run / "config.json").write_text(json.dumps(config))
if run.name == os.environ.get("FAKE_SLEEP"):   # a trainer that takes a while (see the pause test)
    import time
    for _ in range(int(10 * float(os.environ["FAKE_SLEEP_S"]))):   # work that a SIGSTOP holds up
        time.sleep(0.1)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(("resume " if "--resume" in args else "train ") + run.name + "\n")
lr, method = config["optim"]["lr"], config["method"]["method"]
status = {"state": "finished"}
if run.name == os.environ.get("FAKE_STOP") and "--resume" not in args:
    status = {"state": "stopped", "step": 50}
elif lr == 1.0 and method == "ard":
    status = {"state": "failed", "error": "training diverged at step 9: loss is nan"}
else:   # ciard and rslad best at 0.2 (mean), ard best at 0.5 alone
    score = {0.1: 0.30, 0.2: 0.40, 0.5: 0.35, 1.0: 0.20}[lr] + (0.1 if method == "ard" and lr == 0.5 else 0)
    score += 0.3 if method == "adaad" and lr == 1.0 else 0   # the newer methods: adaad best at 1.0,
    score += 0.2 if method == "kdiga" and lr == 0.5 else 0   # kdiga at 0.5, dgad and peeraid at 0.2
    score = 0.1 if method in ("dgad", "peeraid") and lr == 1.0 else score   # collapsed to chance
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 2, "score": score,
                                                   "student_clean": score + 0.1, "student_pgd": score - 0.1}) + "\n")
(run / "status.json").write_text(json.dumps(status))
'''


def _fake_trainer(scratch: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The lr step's tools in the scratch clone, and a PY that fakes `ciard train` (FAKE_PY):
    (the fake interpreter, the log of the trainings it was asked for)."""
    for f in ("choose_lr.py", "pilots.py"):
        shutil.copy(ROOT / "tools" / f, scratch / "tools")
    fake = tmp_path / "fakepy"
    fake.write_text(f"#!{sys.executable}\nREAL = {sys.executable!r}\n" + FAKE_PY)
    fake.chmod(0o755)
    return fake, tmp_path / "trainer.log"


def test_the_lr_step_resumes_a_stopped_pilot_leaves_out_a_diverged_one_and_chooses_once(scratch, tmp_path):
    fake, log = _fake_trainer(scratch, tmp_path)
    # a trainer killed while it loaded (before its first status): its directory has no status.json
    (scratch / "runs" / "zoo" / "lr-ciard-0.1").mkdir(parents=True)
    env = {**os.environ, "PY": str(fake), "PYTHONPATH": str(scratch), "FAKE_LOG": str(log),
           "FAKE_STOP": "lr-rslad-0.2"}

    def lr_step():
        return subprocess.run(["bash", "tools/train_zoo.sh", "lr"], cwd=scratch, env=env,
                              capture_output=True, text=True, timeout=300)

    first = lr_step()   # stops at the stopped pilot, as at a park
    assert first.returncode == 3, first.stdout + first.stderr
    assert log.read_text().split("\n")[:4] == ["train lr-ciard-0.1", "train lr-rslad-0.1", "train lr-ard-0.1",
                                               "train lr-ciard-0.2"]
    assert not (scratch / "runs" / "zoo" / "lr-ciard-0.1-2").exists()
    assert not (scratch / "checkpoints" / "zoo-lr-rule.json").exists()

    second = lr_step()   # resumes it, trains the rest, leaves out the diverged pilot, chooses
    assert second.returncode == 0, second.stdout + second.stderr
    calls = log.read_text().splitlines()
    assert calls[4:7] == ["train lr-rslad-0.2", "resume lr-rslad-0.2", "train lr-ard-0.2"]
    assert len(calls) == 13 and calls.count("train lr-ciard-0.1") == 1
    rule = json.loads((scratch / "checkpoints" / "zoo-lr-rule.json").read_text())
    assert rule["chosen_lr"] == 0.2 and rule["methods"] == ["ciard", "rslad", "ard"]
    assert rule["excluded"] == {"lr-ard-1.0": "training diverged at step 9: loss is nan"}
    assert rule["not_eligible"] == {"1.0": ["ard"]} and rule["best_lr_by_method"]["ard"] == 0.5
    # each training session's seconds and machine are logged, and the rule says where its pilots ran
    # (as a fresh process words it: it names the thread count, which other tests change in this one)
    machine = subprocess.run([sys.executable, "-c", "from ciard.zoo import hardware; print(hardware())"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    sessions = (scratch / "runs" / "zoo" / "lr-rslad-0.2" / "train-seconds").read_text().splitlines()
    assert len(sessions) == 2 and all(line.split(" ", 1)[1] == machine for line in sessions)
    assert rule["trained_on"] == [machine]
    committed = subprocess.run(["git", "log", "--format=%s", "--", "checkpoints/zoo-lr-rule.json"], cwd=scratch,
                               capture_output=True, text=True).stdout
    assert "the student lr rule" in committed

    n_calls = len(log.read_text().splitlines())
    third = lr_step()   # chosen and committed: nothing is trained or chosen again
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(log.read_text().splitlines()) == n_calls
    assert subprocess.run(["git", "log", "--format=%s", "--", "checkpoints/zoo-lr-rule.json"], cwd=scratch,
                          capture_output=True, text=True).stdout == committed


def test_the_newer_methods_get_their_own_lr_from_fp32_pilots_and_their_students_use_it(scratch, tmp_path):
    """lr-newer: a pilot of each newer baseline at each candidate lr, in fp32 like the students,
    each method's best chosen and committed once; adaad's student then trains at adaad's lr and
    KDIGA's gamma pilots at KDIGA's, not at the shared rule's (which the fake pilots would have
    made 0.2 for every method); runs begun at another lr, or a gamma chosen at one, are refused."""
    fake, log = _fake_trainer(scratch, tmp_path)
    env = {**os.environ, "PY": str(fake), "PYTHONPATH": str(scratch), "FAKE_LOG": str(log)}

    def step(name):
        return subprocess.run(["bash", "tools/train_zoo.sh", name], cwd=scratch, env=env,
                              capture_output=True, text=True, timeout=300)

    res = step("dgad")   # without its rule the student does not start
    assert res.returncode == 1 and "run the 'lr-newer' step first" in res.stderr and not log.exists()
    res = step("lr-newer")
    assert res.returncode == 0, res.stdout + res.stderr
    calls = log.read_text().splitlines()
    assert calls[:4] == [f"train lr-dgad-{lr}" for lr in ("0.1", "0.2", "0.5", "1.0")] and len(calls) == 16
    zoo = scratch / "runs" / "zoo"
    assert {json.loads((d / "config.json").read_text())["run"]["precision"] for d in zoo.glob("lr-*")} == {"fp32"}
    rule = json.loads((scratch / "checkpoints" / "zoo-lr-newer.json").read_text())
    assert rule["chosen_lr"] == {"dgad": 0.2, "adaad": 1.0, "kdiga": 0.5, "peeraid": 0.2}
    assert "the newer baselines' lrs" in subprocess.run(
        ["git", "log", "--format=%s", "--", "checkpoints/zoo-lr-newer.json"], cwd=scratch,
        capture_output=True, text=True).stdout
    assert step("lr-newer").returncode == 0 and len(log.read_text().splitlines()) == 16   # chosen once
    step("adaad")   # the fake trainer leaves no weights to evaluate: only its lr matters here
    assert json.loads((zoo / "adaad-resnet20" / "config.json").read_text())["optim"]["lr"] == 1.0
    step("kdiga-gamma")   # (the fake pilots record no KDIGA settings to choose from: their lr is the point)
    assert {json.loads((d / "config.json").read_text())["optim"]["lr"] for d in zoo.glob("gamma-kdiga-*")} == {0.5}
    # a gamma chosen at another lr (a rule that changed since) is refused before KDIGA's student starts
    (scratch / "checkpoints" / "zoo-kdiga-gamma.json").write_text(json.dumps(
        {"chosen_gamma": 10.0, "pilot_budget": {"lr": 1.0}}))
    res = step("kdiga")
    assert res.returncode == 1 and "was chosen at lr 1, KDIGA trains at 0.5 now" in res.stderr
    assert not (zoo / "kdiga-resnet20").exists()
    # a run begun at another lr is neither resumed nor registered under the new lr
    cfg = zoo / "adaad-resnet20" / "config.json"
    cfg.write_text(json.dumps(json.loads(cfg.read_text()) | {"optim": {"lr": 0.1}}))
    (zoo / "adaad-resnet20" / "status.json").write_text(json.dumps({"state": "stopped", "step": 50}))
    n_calls = len(log.read_text().splitlines())
    res = step("adaad")
    assert res.returncode == 1 and "adaad-resnet20 was begun at lr 0.1, not 1.0" in res.stderr
    assert len(log.read_text().splitlines()) == n_calls


def test_a_run_begun_with_another_clean_teacher_is_neither_resumed_nor_counted(scratch, tmp_path):
    """The chain's clean teacher changed once (the label-smoothed airbench94 one stalled CIARD):
    a pilot or student begun with the old one must stop its step, not be resumed or scored as if
    it had the new one."""
    fake, log = _fake_trainer(scratch, tmp_path)
    env = {**os.environ, "PY": str(fake), "PYTHONPATH": str(scratch), "FAKE_LOG": str(log)}
    d = _fake_run(scratch, "lr-ciard-0.1", "finished", ("metrics.jsonl",))
    (d / "config.json").write_text(json.dumps({"model": {"clean_teacher": "zoo:cifar10-clean-airbench94"}}))
    res = subprocess.run(["bash", "tools/train_zoo.sh", "lr"], cwd=scratch, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "lr-ciard-0.1 was begun with clean teacher zoo:cifar10-clean-airbench94, not zoo:cifar10-clean-resnet20" in res.stderr
    assert not log.exists() and not (scratch / "checkpoints" / "zoo-lr-rule.json").exists()
    # named as the chain names it: the step goes on (and resumes nothing it should not)
    (d / "config.json").write_text(json.dumps({"model": {"clean_teacher": "zoo:cifar10-clean-resnet20"}}))
    res = subprocess.run(["bash", "tools/train_zoo.sh", "lr"], cwd=scratch, env=env,
                         capture_output=True, text=True, timeout=300)
    assert "lr-ciard-0.1: done already" in res.stdout and "begun with" not in res.stderr
    assert "train lr-ciard-0.1" not in log.read_text()


def _state(pid: int) -> str:
    """A process's state letter (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _continue_and_kill(*pids: int) -> None:
    """Cleanup after a failed pause test: nothing may stay stopped (or running) behind it."""
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def test_pause_freezes_the_chain_and_its_trainer_and_the_pause_is_not_training_time(scratch, tmp_path):
    """`pause` stops the running chain and the trainer under it (a test suite can then run on a
    quiet machine); `resume` lets them go on; the trainer's recorded seconds leave the pause out.
    Here a pilot of the lr step takes 2 s and is paused for 5 s."""
    fake, log = _fake_trainer(scratch, tmp_path)
    env = {**os.environ, "PY": str(fake), "PYTHONPATH": str(scratch), "FAKE_LOG": str(log),
           "FAKE_SLEEP": "lr-rslad-0.1", "FAKE_SLEEP_S": "2"}
    assert _run(scratch, "pause").returncode == 1   # no chain yet: it says so
    chain = subprocess.Popen(["bash", "tools/train_zoo.sh", "lr"], cwd=scratch, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = scratch / "runs" / "zoo" / "lr-rslad-0.1"
    trainer = None
    try:
        for _ in range(1200):   # until the slow pilot has begun
            if (run / "config.json").exists():
                break
            time.sleep(0.05)
        assert (run / "config.json").exists(), "the slow pilot never began"
        res = _run(scratch, "pause")
        assert res.returncode == 0 and "paused the chain" in res.stdout, res.stdout + res.stderr
        trainer = int(subprocess.run(["pgrep", "-f", f"{fake} -m ciard train"], capture_output=True,
                                     text=True).stdout.split()[0])
        assert _state(chain.pid) == "T" and _state(trainer) == "T"
        assert "paused already" in _run(scratch, "pause").stdout
        time.sleep(5)
        assert _state(trainer) == "T"
        res = _run(scratch, "resume")
        assert res.returncode == 0 and "resumed the chain" in res.stdout, res.stdout + res.stderr
        assert not Path(f"/proc/{trainer}").exists() or _state(trainer) != "T"
        assert chain.wait(timeout=120) == 0, chain.stdout.read()
    finally:
        if chain.poll() is None:
            _continue_and_kill(chain.pid, *([trainer] if trainer else []))
    paused = int((scratch / "runs" / "zoo" / "paused-seconds").read_text())
    assert paused >= 5
    seconds = int((run / "train-seconds").read_text().split()[0])
    assert 1 <= seconds <= 5, seconds   # about 2 s of "training"; with the pause it would be 7 or more
    assert "not paused" in _run(scratch, "resume").stdout


def test_resume_continues_what_pause_stopped_even_if_the_chain_died_meanwhile(scratch):
    """A chain killed while paused (the OOM killer, a session's end) would leave its stopped
    trainer stopped for good if resume looked for the chain again: it continues what it stopped."""
    stand_in = scratch / "stand-in" / "train_zoo.sh"
    stand_in.parent.mkdir()
    stand_in.write_text(f'"{sys.executable}" -c "import time; time.sleep(60)" ciard train\n')
    (scratch / "runs" / "zoo").mkdir(parents=True)
    chain = subprocess.Popen(["bash", str(stand_in)], cwd=scratch)
    child = None
    try:
        for _ in range(200):
            kids = subprocess.run(["pgrep", "-P", str(chain.pid)], capture_output=True, text=True).stdout.split()
            if kids:
                child = int(kids[0])
                break
            time.sleep(0.05)
        assert child, "the stand-in chain started no trainer"
        res = _run(scratch, "pause")
        assert res.returncode == 0 and "paused the chain (2 processes)" in res.stdout, res.stdout + res.stderr
        assert _state(child) == "T"
        chain.kill()
        chain.wait(timeout=10)
        res = _run(scratch, "resume")
        assert res.returncode == 0 and "resumed the chain" in res.stdout, res.stdout + res.stderr
        assert _state(child) != "T"
        assert not (scratch / "runs" / "zoo" / "PAUSED").exists()
    finally:
        _continue_and_kill(chain.pid, *([child] if child else []))
