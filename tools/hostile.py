"""Hostile-input probe: every bad input of issue 12, against the CLI and the run store.

For each CLI case, in a fresh sandbox (its own HOME, cache, working directory and run store):
exit status 2, exactly one line on stderr besides the time-stamped progress log (a case that
loads the data first logs that it did), starting "error:", no traceback, no file created or changed anywhere in the sandbox outside the run
store (nor in the store: a refused run leaves nothing), nothing created in /proc or /tmp by
the path cases, and nothing executed: the pickle cases would create a marker file if loaded.
For each run-store case: one ValueError/KeyError of one line, and the same file checks.

    python tools/hostile.py            # every case; one line each; exit 1 if any fails
    python tools/hostile.py -k resume  # the cases whose name contains "resume"

``tests/test_hostile.py`` runs the same cases under pytest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LONG = "n" * 300                                   # a name part over the file system's 255
MARKER = "EXECUTED"                                # what the evil pickle would create
#: the cheapest real training config (natural training, no teachers, the embedded data)
TINY = ["--method", "natural", "--student", "smallcnn", "--train-subset", "64", "--batch-size", "32",
        "--epochs", "1", "--eval-size", "16", "--test-size", "0", "--device", "cpu", "--no-progress"]
SECONDS = 120                                      # per case; the zero archive must be far quicker


@dataclass
class Sandbox:
    """A directory tree a case runs in; ``store`` is its run store."""
    root: Path
    store: Path = field(init=False)
    files: Path = field(init=False)
    work: Path = field(init=False)

    def __post_init__(self) -> None:
        self.store, self.files, self.work = self.root / "store", self.root / "files", self.root / "work"

    @property
    def marker(self) -> Path:
        return self.root / MARKER


def make_sandbox(root: Path) -> Sandbox:
    """The fixtures every case may point at (built in well under a second)."""
    import torch
    from ciard.config import Config
    sb = Sandbox(root)
    for d in (sb.store, sb.files, sb.work, root / "home", root / "cache"):
        d.mkdir(parents=True)
    f = sb.files
    with open(f / "zeros.tar.gz", "wb") as fh:
        fh.truncate(2 * 1024 ** 3)                 # 2 GB of zeros, sparse
    (f / "text.txt").write_text("hello, this is text\n")
    (f / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    (f / "huge.json").write_text('{"optim": {"lr": 1e400}}')

    class Evil:   # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(sb.marker), "w"))
    good = {"arch": "smallcnn", "num_classes": 10}
    for name, meta, state in [("evil.pt", good, Evil()),
                              ("arch.pt", {"arch": "wrn-1000-1000", "num_classes": 10}, {}),
                              ("unknown-arch.pt", {"arch": "alexnet-9000", "num_classes": 10}, {}),
                              ("classes.pt", {"arch": "smallcnn", "num_classes": 10 ** 9}, {}),
                              ("kwargs.pt", {**good, "kwargs": {"depth": 10 ** 6}}, {}),
                              ("model-str.pt", "smallcnn", {})]:
        torch.save({"format": 1, "kind": "model", "model": meta, "state_dict": state}, f / name)
    cfg = Config().override(method="natural", student="smallcnn", device="cpu", out_dir=str(sb.store))
    for name, config in (("stopped", cfg.to_json()), ("broken", "{not json"), ("busy", cfg.to_json())):
        (sb.store / name).mkdir()
        (sb.store / name / "config.json").write_text(config)
        (sb.store / name / "status.json").write_text(json.dumps({"state": "stopped", "step": 1}))
    (sb.store / "busy" / "last.pt").write_bytes(b"x")
    return sb


@dataclass
class Case:
    name: str
    argv: Callable[[Sandbox], list[str]]           # after `python -m ciard`
    expect: str                                    # a piece of the one line
    status: int = 2
    busy: bool = False                             # hold the lock of store/busy, as its trainer would


def _cuda_missing() -> str:
    import torch
    return "cuda:99" if torch.cuda.is_available() else "cuda"


CLI_CASES = [
    # data integrity and the run store
    Case("resume-running-run", lambda s: ["train", "--resume", str(s.store / "busy")], "in use by another trainer",
         busy=True),
    Case("resume-a-file", lambda s: ["train", "--resume", str(s.files / "text.txt")], "is a file"),
    Case("resume-broken-config", lambda s: ["train", "--resume", str(s.store / "broken")], "is not valid JSON"),
    Case("resume-nowhere", lambda s: ["train", "--resume", str(s.store / "nowhere")], "no run directory"),
    Case("batch-larger-than-dataset", lambda s: ["train", *TINY, "--batch-size", "128", "--out-dir", str(s.store),
                                                 "--name", "big"], "larger than the 64 training images"),
    # non-finite numbers
    *[Case(f"non-finite{flag}-{value}", lambda s, f=flag, v=value: ["train", f"{f}={v}", "--out-dir", str(s.store)],
           "is not a finite number")
      for flag, value in (("--lr", "nan"), ("--lr", "inf"), ("--push-weight", "nan"), ("--weight-decay", "nan"))],
    Case("config-1e400", lambda s: ["train", "--config", str(s.files / "huge.json"), "--out-dir", str(s.store)],
         "lr = inf is not a finite number"),
    Case("config-not-utf8", lambda s: ["train", "--config", str(s.files / "latin1.json"), "--out-dir", str(s.store)],
         "is not UTF-8"),
    # names and paths
    *[Case(f"name-{label}", lambda s, n=name: ["train", *TINY, "--out-dir", str(s.store), "--name", n],
           "is not allowed")
      for label, name in (("dotdot", "../../escaped"), ("absolute", "/tmp/ciard-hostile-escaped"), ("nested", "a/b"),
                          ("long", LONG), ("hidden", ".hidden"))],
    Case("teacher-path-long", lambda s: ["train", "--method", "ciard", "--clean-teacher", f"/tmp/{LONG}.pt",
                                         "--out-dir", str(s.store)], "longer than 255"),
    Case("checkpoint-path-long", lambda s: ["eval", "--checkpoint", f"/tmp/{LONG}.pt"], "longer than 255"),
    Case("resume-path-long", lambda s: ["train", "--resume", f"/tmp/{LONG}"], "longer than 255"),
    Case("data-path-no-such-user", lambda s: ["train", "--dataset", "folder", "--data-path", "~nosuchuser/data",
                                              "--out-dir", str(s.store)], "no user 'nosuchuser'"),
    Case("out-dir-in-proc", lambda s: ["train", *TINY, "--out-dir", "/proc/ciard-hostile"], "cannot create"),
    Case("zero-archive", lambda s: ["train", *TINY, "--dataset", "cifar10-archive", "--data-path",
                                    str(s.files / "zeros.tar.gz"), "--out-dir", str(s.store), "--name", "zeros"],
         "not an archive"),
    Case("zero-archive-data-info", lambda s: ["data", "info", "--dataset", "cifar10-archive", "--data-path",
                                              str(s.files / "zeros.tar.gz")], "not an archive"),
    # devices
    Case("device-cuda-without-gpu", lambda s: ["train", "--device", _cuda_missing(), "--out-dir", str(s.store)],
         "asked for, but this machine has"),
    Case("device-cudaXYZ", lambda s: ["train", "--device", "cudaXYZ", "--out-dir", str(s.store)], "unknown device"),
    Case("eval-device-cudaXYZ", lambda s: ["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--device", "cudaXYZ"],
         "unknown device"),
    # checkpoints from anywhere
    Case("checkpoint-etc-passwd", lambda s: ["eval", "--checkpoint", "/etc/passwd"], "not a file torch.save wrote"),
    Case("checkpoint-text", lambda s: ["eval", "--checkpoint", str(s.files / "text.txt")],
         "not a file torch.save wrote"),
    Case("checkpoint-pickle-runs-code", lambda s: ["eval", "--checkpoint", str(s.files / "evil.pt")], "could run code"),
    Case("teacher-pickle-runs-code", lambda s: ["train", "--method", "rslad", "--robust-teacher",
                                                str(s.files / "evil.pt"), *TINY[2:], "--out-dir", str(s.store)],
         "could run code"),
    Case("meta-huge-arch", lambda s: ["eval", "--checkpoint", str(s.files / "arch.pt")], "too large"),
    Case("meta-unknown-arch", lambda s: ["eval", "--checkpoint", str(s.files / "unknown-arch.pt")], "unknown model"),
    Case("meta-10e9-classes", lambda s: ["eval", "--checkpoint", str(s.files / "classes.pt")],
         "is not a class count"),
    Case("meta-unexpected-kwargs", lambda s: ["eval", "--checkpoint", str(s.files / "kwargs.pt")],
         "unexpected model argument"),
    Case("meta-model-is-a-string", lambda s: ["eval", "--checkpoint", str(s.files / "model-str.pt")],
         "model description is a str"),
    # eval's own numbers
    Case("eval-batch-size-0", lambda s: ["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--batch-size", "0"],
         "batch_size = 0 must be at least 1"),
    Case("eval-n-negative", lambda s: ["eval", "--checkpoint", "zoo:demo-clean-resnet20", "--n", "-5"],
         "--n -5 must be at least 0"),
]
#: words that must never reach a user: torch's own advice, Python's internals
FORBIDDEN = ("Traceback", "weights_only", "list index out of range", ": 101", "KeyError", "IndexError")


def _snapshot(sb: Sandbox) -> dict[str, int]:
    """Every path under the sandbox (the run store included) with its size; the marker too."""
    out = {}
    for d, dirs, files in os.walk(sb.root):
        for name in dirs + files:
            p = Path(d) / name
            out[str(p.relative_to(sb.root))] = p.lstat().st_size if name in files else -1
    return out


def _outside() -> set[str]:
    return {p for p in ("/tmp/ciard-hostile-escaped", "/proc/ciard-hostile") if os.path.lexists(p)}


def check_cli(case: Case, sb: Sandbox) -> None:
    """Run one case; AssertionError saying what went wrong."""
    from ciard.runlock import RunLock
    before, outside = _snapshot(sb), _outside()
    env = {**os.environ, "HOME": str(sb.root / "home"), "CIARD_CACHE": str(sb.root / "cache"),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CIARD_RUNS_DIR": str(sb.store)}
    lock = RunLock(sb.store / "busy")
    if case.busy:
        lock.acquire()
    t0 = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-m", "ciard", *case.argv(sb)], cwd=sb.work, env=env,
                             capture_output=True, text=True, timeout=SECONDS, stdin=subprocess.DEVNULL)
    finally:
        lock.release()
    took = time.monotonic() - t0
    # the CLI logs progress with a timestamp; the refusal is the one line starting "error:"
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln[:2].isdigit()]
    assert res.returncode == case.status, f"exit {res.returncode}, stderr: {res.stderr[-1500:]}"
    assert len(lines) == 1, f"{len(lines)} lines: {res.stderr[-1500:]}"
    assert lines[0].startswith("error: ") and case.expect in lines[0], lines[0]
    bad = [w for w in FORBIDDEN if w in res.stderr + res.stdout]
    assert not bad, f"{bad} in output: {res.stderr[-1500:]}"
    assert not sb.marker.exists(), "the pickle was executed"
    after = _snapshot(sb)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))[:5]}"
    assert _outside() == outside, f"created outside: {_outside() - outside}"
    assert took < SECONDS, f"took {took:.0f} s"


# -- the run store, in this process ---------------------------------------------------------------
def store_cases() -> list[tuple[str, Callable[[Sandbox], object], str]]:
    from ciard.config import Config
    from ciard.runs import RunStore

    def cfg(**kw):
        return Config().override(**{"method": "natural", "student": "smallcnn", "device": "cpu", **kw})
    cases = []
    for label, name in (("dotdot", "../../escaped"), ("absolute", "/tmp/ciard-hostile-escaped"), ("nested", "a/b"),
                        ("long", LONG)):
        cases.append((f"store-launch-name-{label}", lambda s, n=name: RunStore(s.store).launch(cfg(), name=n),
                      "is not allowed"))
        cases.append((f"store-get-name-{label}", lambda s, n=name: RunStore(s.store).get(n), "is not allowed"))
        cases.append((f"store-stop-name-{label}", lambda s, n=name: RunStore(s.store).stop(n), "is not allowed"))
        cases.append((f"store-delete-name-{label}", lambda s, n=name: RunStore(s.store).delete(n), "is not allowed"))
    cases += [
        ("store-launch-lr-nan", lambda s: RunStore(s.store).launch(cfg(lr=float("nan"))), "is not a finite number"),
        ("store-launch-weight-decay-inf", lambda s: RunStore(s.store).launch(cfg(weight_decay="inf")),
         "is not a finite number"),
        ("store-launch-device-cudaXYZ", lambda s: RunStore(s.store).launch(cfg(device="cudaXYZ")), "unknown device"),
        ("store-resume-running-run", lambda s: RunStore(s.store).resume("busy"), "already running"),
        ("store-delete-running-run", lambda s: RunStore(s.store).delete("busy"), "stop it first"),
    ]
    return cases


def check_store(name: str, action: Callable[[Sandbox], object], expect: str, sb: Sandbox) -> None:
    from ciard.runlock import RunLock
    before, outside = _snapshot(sb), _outside()
    lock = RunLock(sb.store / "busy")
    lock.acquire()   # store/busy is being trained (only the "busy" cases look at it)
    try:
        action(sb)
    except (ValueError, KeyError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        assert "\n" not in text and expect in text, text
    else:
        raise AssertionError("accepted")
    finally:
        lock.release()
    assert _snapshot(sb) == before, "files changed"
    assert _outside() == outside, f"created outside: {_outside() - outside}"
    assert not sb.marker.exists()


def main(argv: list[str]) -> int:
    import tempfile
    pick = argv[argv.index("-k") + 1] if "-k" in argv else ""
    failed = 0
    todo = [(c.name, lambda sb, c=c: check_cli(c, sb)) for c in CLI_CASES] + \
           [(n, lambda sb, a=a, e=e, n=n: check_store(n, a, e, sb)) for n, a, e in store_cases()]
    for name, check in todo:
        if pick not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="ciard-hostile-") as tmp:
            try:
                check(make_sandbox(Path(tmp)))
                print(f"ok    {name}")
            except AssertionError as exc:
                failed += 1
                print(f"FAIL  {name}: {' '.join(str(exc).split())[:300]}")
    print(f"{failed} failed" if failed else "every case held")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
