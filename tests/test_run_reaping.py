"""The run store reaps the trainers it starts: none is left ``<defunct>`` under the process that
launched it (the Streamlit server in the app, this test here)."""
import os
import time
from pathlib import Path

from ciard.runs import RunStore
from proc_support import descendants
from store_support import tiny_config as _tiny, wait_for as _wait


def _state(pid: int) -> str | None:
    """The one-letter state of a process from /proc (None once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return None


def test_three_finished_runs_leave_no_zombie(tmp_path):
    store = RunStore(tmp_path)
    names = ["r1", "r2", "r3"]
    for i, name in enumerate(names):
        store.launch(_tiny(epochs=1, train_subset=128, seed=i), name=name)
    for name in names:
        # a finished status is read without probing the pid, so waiting here reaps nothing
        _wait(store, name, lambda info: info.state == "finished", timeout=180)
    # every trainer has written "finished"; give them time to exit, then none may be a zombie
    deadline = time.time() + 30
    while time.time() < deadline:
        states = [_state(p) for p in descendants(os.getpid())]
        if all(s in (None, "Z") for s in states):
            break
        time.sleep(0.2)
    time.sleep(0.5)   # the reaper threads collect within milliseconds of the exit
    zombies = [p for p in descendants(os.getpid()) if _state(p) == "Z"]
    assert zombies == [], f"trainers left <defunct>: {zombies}"
