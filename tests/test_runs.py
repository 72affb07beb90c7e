"""The run store with real trainer processes: launch, stop, resume, kill -9, delete, promote."""
import os
import signal

import pytest

from ciard.runs import RunStore
from store_support import tiny_config as _tiny, wait_for as _wait


def _steps(store, name):
    records, _ = store.read_metrics(name)
    return [r["step"] for r in records if r["kind"] == "step"]


def test_launch_stop_resume_finish(tmp_path):
    store = RunStore(tmp_path)
    info = store.launch(_tiny(), name="a")
    assert info.state in ("starting", "running")
    _wait(store, "a", lambda i: len(_steps(store, "a")) >= 3)
    with pytest.raises(ValueError, match="already running"):
        store.resume("a")
    with pytest.raises(ValueError, match="stop it first"):
        store.delete("a")
    store.stop("a")
    info = _wait(store, "a", lambda i: i.state == "stopped")
    stopped_at = info.step
    assert 3 <= stopped_at < 48
    store.resume("a")
    info = _wait(store, "a", lambda i: i.state == "finished")
    assert info.step == 48
    assert _steps(store, "a") == list(range(1, 49))     # nothing lost, nothing doubled
    # follow incrementally: offsets give only new whole lines
    first, off = store.read_metrics("a", 0)
    more, off2 = store.read_metrics("a", off)
    assert first and more == [] and off2 == off
    assert store.promote("a").name == "best.pt"
    assert store.active()["run"] == "a"
    store.delete("a")
    assert store.names() == [] and store.active() == {}


def test_killed_trainer_is_failed_and_resumable(tmp_path):
    store = RunStore(tmp_path)
    store.launch(_tiny(), name="k")
    _wait(store, "k", lambda i: i.state == "running" and (tmp_path / "k" / "last.pt").is_file())
    pid = store.get("k").status["pid"]
    os.kill(pid, signal.SIGKILL)
    info = _wait(store, "k", lambda i: i.state == "failed")
    assert "gone" in info.error
    store.resume("k")
    _wait(store, "k", lambda i: i.state == "finished")
    steps = _steps(store, "k")
    assert steps == list(range(1, 49))


def test_bad_config_is_refused_before_a_process_starts(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="eps"):
        store.launch(_tiny(method="pgd_at", eps=3.0))
    assert store.names() == []


def test_two_concurrent_runs_each_complete(tmp_path):
    store = RunStore(tmp_path)
    store.launch(_tiny(epochs=1), name="one")
    store.launch(_tiny(epochs=1, seed=1), name="two")
    for name in ("one", "two"):
        _wait(store, name, lambda i: i.state == "finished", timeout=180)
        assert _steps(store, name) == list(range(1, 17))
    assert {r.name for r in store.list()} == {"one", "two"}
