"""The Streamlit app's pages through ``streamlit.testing.v1.AppTest`` (no browser).

Each test points the app at its own run store with ``CIARD_RUNS_DIR``. Runs the Runs page
needs are written by hand (a finished run directory is just files); one test submits the
Train form and waits for the real trainer process it launched to finish.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ciard.config import preset
from ciard.runs import RunStore
from ciard.studio import forms
from ciard.studio.metrics import Follower, config_differences, metrics_csv, seconds_left
from ciard.studio.sidebar import check_data_path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds per script run: the first one imports torch


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def _ended_pid() -> int:
    """The pid of a process that has ended and been reaped: no process has it now."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_run(root: Path, name: str, *, state: str = "finished", pid: int | None = None,
               epochs: int = 2, steps_per_epoch: int = 3, final: bool = True, **overrides) -> Path:
    """A run directory as a trainer leaves it (config, status, metrics), without training."""
    cfg = preset("demo").override(name=name, epochs=epochs, out_dir=str(root), **overrides)
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(cfg.to_json())
    total = epochs * steps_per_epoch
    done = total if state == "finished" else steps_per_epoch
    t0 = time.time() - 100
    status = {"state": state, "step": done, "total_steps": total, "epoch": done // steps_per_epoch,
              "started": t0, "heartbeat": time.time(), "pid": pid}
    (d / "status.json").write_text(json.dumps(status))
    lines = []
    for s in range(1, done + 1):
        lines.append({"kind": "step", "step": s, "epoch": s / steps_per_epoch, "time": t0 + s,
                      "loss": 2.0 - 0.1 * s, "loss_adv": 1.0, "loss_nat": 0.5, "loss_push": 0.1,
                      "tau_adv": 1.0 + 0.01 * s, "tau_nat": 1.0, "w_adv": 1.0, "w_nat": 1.0,
                      "lr": 0.5, "teacher_lr": 0.0, "train_acc": 0.2, "img_per_s": 100.0})
        if s % steps_per_epoch == 0:
            e = s // steps_per_epoch
            lines.append({"student_clean": 0.3 + 0.05 * e, "student_pgd": 0.1 + 0.02 * e,
                          "robust_teacher_clean": 0.5, "robust_teacher_pgd": 0.3,
                          "clean_teacher_clean": 0.8, "clean_teacher_pgd": 0.0,
                          "kind": "epoch", "epoch": e, "step": s, "score": 0.2 + 0.035 * e, "time": t0 + s})
    if final and state == "finished":
        lines.append({"kind": "final", "step": done, "time": t0 + done, "test_n": 100,
                      "test_clean": 0.41, "test_pgd20": 0.12, "test_attack": "PGD-20"})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines))
    (d / "train.log").write_text("12:00:00 INFO run started\n")
    return d


def _frame(at: AppTest, where) -> "pd.DataFrame":
    """The first dataframe on the page for which ``where(df)`` holds (AppTest keeps no keys)."""
    for d in at.dataframe:
        if where(d.value):
            return d.value
    raise AssertionError(f"no such dataframe among {[list(d.value.columns) for d in at.dataframe]}")


def _texts(elements) -> list[str]:
    """The elements' text as shown: Markdown escapes (``\\(``) of user text removed."""
    return [re.sub(r"\\(.)", r"\1", str(e.value)) for e in elements]


# -- pure helpers ---------------------------------------------------------------------------
def test_form_round_trips_every_preset_exactly():
    for name in forms.preset_names():
        values = forms.preset_values(name)
        cfg = preset(name).override(**values)      # what the form submits, unchanged
        assert cfg == preset(name), name
    assert forms.preset_values("demo")["eps"] == "8/255"


def test_data_path_checks_are_one_line(tmp_path):
    assert check_data_path("default", None) is None
    assert "not found" in check_data_path("cifar10-archive", str(tmp_path / "nope.tar.gz"))
    assert "is a folder" in check_data_path("cifar10-archive", str(tmp_path))
    assert "no train/" in check_data_path("folder", str(tmp_path))
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    assert check_data_path("folder", str(tmp_path)) is None


def test_follower_reads_increments_and_restarts_on_rewrite(runs_dir):
    _write_run(runs_dir, "a")
    store = RunStore(runs_dir)
    f = Follower("a")
    assert f.update(store) and len(f.steps) == 6 and len(f.epochs) == 2 and f.final
    assert not f.update(store)                    # nothing new
    with open(runs_dir / "a" / "metrics.jsonl", "a") as fh:
        fh.write('{"kind":"step","step":7,"epoch":2.3,"time":1,"loss":1.0}\n{"kind":"st')  # a cut line
    assert f.update(store) and len(f.steps) == 7
    # a resume rewrites the file (new inode): the follower starts over
    path = runs_dir / "a" / "metrics.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text('{"kind":"step","step":1,"epoch":0.3,"time":1,"loss":1.0}\n')
    os.replace(tmp, path)
    assert f.update(store) and [s["step"] for s in f.steps] == [1]
    steps, _ = f.frames()
    assert list(steps["step"]) == [1]


def test_seconds_left_from_step_times():
    steps = pd.DataFrame({"step": [1, 2, 3, 4], "time": [10.0, 12.0, 14.0, 16.0]})
    assert seconds_left(steps, 10) == pytest.approx(12.0)
    assert seconds_left(steps.head(1), 10) is None


# -- pages ----------------------------------------------------------------------------------
def test_no_pages_folder_beside_app_py():
    # With a pages/ folder Streamlit starts in its old directory mode, and a first visit to a
    # page URL after a server start (/train) runs that file alone: no sidebar, no navigation.
    assert not (ROOT / "pages").exists(), "keep the app's pages in app_pages/ (see app.py)"


def test_home_page_renders(runs_dir):
    at = _app()
    assert at.title[0].value == "CIARD Studio"
    text = " ".join(_texts(at.markdown))
    for word in ("clean teacher", "robust teacher", "push loss", "iterative teacher training"):
        assert word in text
    assert len(at.get("page_link")) >= 2
    assert at.sidebar.selectbox(key="sb_dataset").value == "default"


def test_sidebar_checks_typed_dataset_paths(runs_dir, tmp_path):
    at = _app()
    at.sidebar.selectbox(key="sb_dataset").set_value("folder").run()
    at.sidebar.text_input(key="sb_data_path").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert any("dataset path not found" in e for e in _texts(at.sidebar.error)), _texts(at.sidebar.error)
    at.sidebar.selectbox(key="sb_dataset").set_value("cifar10-archive").run()
    at.sidebar.text_input(key="sb_data_path").set_value(str(tmp_path)).run()
    assert any("is a folder" in e for e in _texts(at.sidebar.error)), _texts(at.sidebar.error)
    # the choice holds on another page, and the Train form starts from it
    at.switch_page("app_pages/train.py").run()
    assert at.sidebar.selectbox(key="sb_dataset").value == "cifar10-archive"
    assert at.selectbox(key="tf_dataset").value == "cifar10-archive"


@pytest.mark.parametrize("field, value, message", [
    ("eps", "2", "eps (L-inf) = 2 must be in (0, 1]"),
    ("lr", "-0.1", "Learning rate = -0.1 must not be negative"),
    ("eps", "abc", "eps (L-inf) = 'abc' is not a valid float"),
    ("robust_teacher", "/no/such/teacher.pt", "Robust teacher: checkpoint not found: /no/such/teacher.pt"),
])
def test_train_form_rejects_bad_values_with_the_cli_message(runs_dir, field, value, message):
    at = _app("app_pages/train.py")
    at.text_input(key=f"tf_{field}").set_value(value)
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(message in e for e in _texts(at.error)), _texts(at.error)
    assert RunStore(runs_dir).names() == []       # nothing launched


def test_train_form_refuses_a_truncated_teacher_checkpoint(runs_dir, tmp_path):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    at = _app("app_pages/train.py")
    at.text_input(key="tf_clean_teacher").set_value(str(bad))
    at.button(key="train_start").click().run()
    assert any("cannot read checkpoint" in e for e in _texts(at.error)), _texts(at.error)
    assert RunStore(runs_dir).names() == []


def test_train_form_launches_a_run_and_follows_it(runs_dir):
    at = _app("app_pages/train.py")
    assert at.selectbox(key="train_preset").value == "demo"
    at.selectbox(key="tf_method").set_value("natural")
    at.selectbox(key="tf_student").set_value("smallcnn")
    at.text_input(key="tf_student_init").set_value("")      # the demo's warm start is a ResNet-20
    at.number_input(key="tf_epochs").set_value(1)
    at.number_input(key="tf_train_subset").set_value(256)
    at.number_input(key="tf_eval_size").set_value(32)
    at.number_input(key="tf_test_size").set_value(0)
    at.text_input(key="tf_name").set_value("apptest")
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, _texts(at.error)
    store = RunStore(runs_dir)
    assert store.names() == ["apptest"]
    cfg = store.get("apptest").config
    assert cfg["method"]["method"] == "natural" and cfg["data"]["train_subset"] == 256
    assert cfg["run"]["eval_size"] == 32 and cfg["run"]["test_size"] == 0
    assert at.selectbox(key="train_run").value == "apptest"
    try:
        t0 = time.time()
        while store.get("apptest").state in ("starting", "running") and time.time() - t0 < 150:
            time.sleep(0.5)
        assert store.get("apptest").state == "finished", store.log_tail("apptest")
    finally:
        if store.get("apptest").state in ("starting", "running"):
            store.kill("apptest")
    at.run()
    assert not at.exception
    assert any("Finished" in s for s in _texts(at.success)), _texts(at.success)
    assert at.get("plotly_chart"), "the finished run's curves are drawn"
    assert any("step 2 / 2" in str(p.proto.text) for p in at.get("progress"))


def test_train_page_shows_a_failed_run_with_its_log(runs_dir):
    d = _write_run(runs_dir, "crashed", state="running", pid=_ended_pid())
    (d / "console.log").write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert at.selectbox(key="train_run").value == "crashed"
    assert any("failed" in e for e in _texts(at.error)), _texts(at.error)
    assert any("RuntimeError: boom" in c for c in _texts(at.code))
    # no checkpoint: nothing to resume, and the page says so instead of offering Resume
    assert not [b for b in at.button if b.key == "train_resume_btn"]
    assert any("nothing to resume" in c for c in _texts(at.caption))
    (d / "last.pt").write_bytes(b"")                   # with a checkpoint it can be resumed
    at.run()
    assert at.button(key="train_resume_btn")


def test_a_queued_run_can_be_taken_off_the_queue(runs_dir):
    store = RunStore(runs_dir)
    cfg = preset("demo").override(student="smallcnn", student_init=None, epochs=1, train_subset=64)
    name = store.launch(cfg, "waiting", queued=True).name
    at = _app("app_pages/train.py")
    assert at.selectbox(key="train_run").value == name
    at.button(key="train_dequeue_btn").click().run()
    assert not at.exception
    info = store.get(name)
    assert info.state == "stopped" and "off the queue" in (info.error or "")
    assert not [b for b in at.button if b.key == "train_dequeue_btn"]


def test_train_page_says_teachers_are_being_prepared(runs_dir):
    # what a distillation run with teachers "auto" looks like while its process trains a teacher:
    # its own status still says starting, its metrics are empty, a teacher run is under teachers/
    d = _write_run(runs_dir, "distil", state="starting", final=False)
    (d / "metrics.jsonl").write_text("")
    (d / "process.json").write_text(json.dumps({"pid": os.getpid(), "first_launched": time.time()}))
    (d / "train.log").write_text("INFO no shipped clean teacher: training a quick one\n")
    teacher = runs_dir / "teachers" / "clean-default"
    teacher.mkdir(parents=True)
    (teacher / "status.json").write_text(json.dumps({"state": "running", "step": 12, "total_steps": 420}))
    at = _app("app_pages/train.py")
    assert any("Preparing teachers" in i for i in _texts(at.info)), _texts(at.info)
    assert any("clean-default: step 12 / 420" in str(p.proto.text) for p in at.get("progress"))
    assert any("training a quick one" in c for c in _texts(at.code))
    # a stop asked for now is kept and honoured at the student's first step
    assert not at.button(key="train_stop_btn").disabled


def test_runs_page_lists_compares_and_manages_runs(runs_dir):
    _write_run(runs_dir, "base")
    _write_run(runs_dir, "no-push", push_weight=0.0, itt=False)
    (runs_dir / "no-push" / "best.pt").write_bytes(b"x")       # promote needs a best.pt
    _write_run(runs_dir, "live", state="running", pid=os.getpid(), final=False)
    at = _app("app_pages/runs.py")
    table = _frame(at, lambda df: "name" in df.columns)
    assert set(table["name"]) == {"base", "no-push", "live"}
    row = table.set_index("name").loc["base"]
    assert row["state"] == "finished" and row["test clean %"] == 41.0 and row["best val clean %"] == 40.0

    at.multiselect(key="runs_select").set_value(["base", "no-push"]).run()
    diff = _frame(at, lambda df: any(str(i).startswith("method.") for i in df.index))
    assert set(diff.index) == {"method.push_weight", "method.itt"}
    assert list(diff.loc["method.itt"]) == ["True", "False"]
    final = _frame(at, lambda df: "test clean %" in df.index)
    assert list(final.columns) == ["base", "no-push"]
    assert at.get("plotly_chart")
    assert at.get("download_button")

    # promote: refused without a student checkpoint, done with one
    at.selectbox(key="runs_action_run").set_value("base")
    at.button(key="runs_promote").click().run()
    assert any("no student checkpoint" in e for e in _texts(at.error))
    at.selectbox(key="runs_action_run").set_value("no-push")
    at.button(key="runs_promote").click().run()
    assert RunStore(runs_dir).active() == {}          # per session: nothing shared is written
    assert any("Promoted" in s and "for this session" in s for s in _texts(at.success))
    # the sidebar now offers it as the active student, and says its (fake) file is unreadable
    assert at.sidebar.selectbox(key="sb_student").value == str(runs_dir / "no-push" / "best.pt")
    assert any("cannot read checkpoint" in w for w in _texts(at.sidebar.warning)), _texts(at.sidebar.warning)

    # delete: a running run is refused with the store's message; a finished one goes
    at.selectbox(key="runs_action_run").set_value("live")
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    assert any("is running; stop it first" in e for e in _texts(at.error)), _texts(at.error)
    at.selectbox(key="runs_action_run").set_value("base")
    at.button(key="runs_delete").click().run()
    assert (runs_dir / "base").exists()                        # not before confirming
    at.button(key="runs_delete_confirm").click().run()
    assert not at.exception
    assert not (runs_dir / "base").exists()
    assert sorted(RunStore(runs_dir).names()) == ["live", "no-push"]


def test_config_differences_only_lists_differing_keys(runs_dir):
    _write_run(runs_dir, "a")
    _write_run(runs_dir, "b", eps=4 / 255)
    store = RunStore(runs_dir)
    diff = config_differences([store.get("a"), store.get("b")])
    assert list(diff.index) == ["attack.eps"]
    assert list(diff.loc["attack.eps"]) == ["8/255", "4/255"]


def test_metrics_csv_has_every_record_of_the_selected_runs(runs_dir):
    _write_run(runs_dir, "a")
    _write_run(runs_dir, "b", final=False, state="stopped")
    import io
    df = pd.read_csv(io.BytesIO(metrics_csv(RunStore(runs_dir), ["a", "b"])))
    assert list(df.columns[:5]) == ["run", "kind", "step", "epoch", "time"]
    assert (df["run"] == "a").sum() == 6 + 2 + 1 and (df["run"] == "b").sum() == 3 + 1
    assert set(df["kind"]) == {"step", "epoch", "final"}


@pytest.mark.parametrize("method,robust", [("dgad", True), ("peeraid", False), ("ciard", True)])
def test_train_page_names_the_teachers_the_method_uses(runs_dir, method, robust):
    _write_run(runs_dir, f"run-{method}", method=method)
    at = _app("app_pages/train.py")
    header = [t for t in _texts(at.markdown) if f"{method} · student" in t]
    assert header, _texts(at.markdown)
    assert ("robust teacher" in header[0]) == robust
    assert ("clean teacher" in header[0]) == (method == "ciard")


def test_train_page_says_when_the_student_has_collapsed_to_one_class(runs_dir):
    _write_run(runs_dir, "fine")
    at = _app("app_pages/train.py")
    assert at.selectbox(key="train_run").value == "fine"
    assert not any("Collapsed" in w for w in _texts(at.warning))   # records without the measure
    d = _write_run(runs_dir, "collapsed")
    lines = (d / "metrics.jsonl").read_text().splitlines()
    last_epoch = max(i for i, line in enumerate(lines) if '"kind":"epoch"' in line)
    lines[last_epoch] = json.dumps(json.loads(lines[last_epoch]) | {"student_top_class_share": 0.97},
                                   separators=(",", ":"))
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    at.run()
    at.selectbox(key="train_run").set_value("collapsed").run()
    assert not at.exception
    assert any("Collapsed: after epoch 2 the student predicts one class for 97%" in w for w in _texts(at.warning)), \
        _texts(at.warning)
