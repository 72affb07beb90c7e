"""Run directories: created atomically, never left holding only a status file, no stale temp files."""
import json
import multiprocessing
import os

import pytest

from ciard.config import Config, ConfigError
from ciard.runlog import RunDir
from ciard.trainer import Trainer


def _make_many(args):
    root, n = args
    return [str(RunDir.new(root, "same").path) for _ in range(n)]


def test_simultaneous_new_run_dirs_never_share_a_directory(tmp_path):
    # two processes asking for the same name at the same moment, 200 times each
    with multiprocessing.get_context("fork").Pool(2) as pool:
        paths = sum(pool.map(_make_many, [(str(tmp_path), 200)] * 2), [])
    assert len(paths) == 400
    assert len(set(paths)) == 400, f"{400 - len(set(paths))} directories handed out twice"
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)


def test_new_keeps_suffixed_names_valid(tmp_path):
    base = "n" * 100
    first, second = RunDir.new(tmp_path, base), RunDir.new(tmp_path, base)
    assert first.path.name == base and second.path.name == "n" * 98 + "-2"


def test_a_run_refused_before_it_starts_leaves_no_directory(tmp_path):
    cfg = Config().override(method="natural", student="smallcnn", train_subset=64, batch_size=128, epochs=1,
                            eval_size=16, test_size=0, device="cpu", out_dir=str(tmp_path / "runs"),
                            name="toolarge", progress=False)
    with pytest.raises(ConfigError, match="batch_size = 128 is larger than the 64 training images"):
        Trainer(cfg).fit()
    assert os.listdir(tmp_path / "runs") == []


def test_a_run_made_by_the_store_keeps_its_failure_on_record(tmp_path):
    # the app's run store writes config.json first: the failure stays visible as state "failed"
    RunDir(tmp_path / "kept").write_config("{}")
    cfg = Config().override(method="natural", student="smallcnn", train_subset=64, batch_size=128, epochs=1,
                            device="cpu", progress=False)
    with pytest.raises(ConfigError):
        Trainer(cfg, RunDir(tmp_path / "kept")).fit()   # as the trainer process opens it
    assert json.loads((tmp_path / "kept" / "status.json").read_text())["state"] == "failed"


def test_stale_temp_files_are_removed_when_a_trainer_starts(tmp_path):
    run = RunDir(tmp_path / "r")
    stale = [".last.pt.abc123.tmp", ".best.pt.x.tmp", ".status.json.99.tmp", ".metrics.jsonl.q.tmp"]
    for name in stale + ["keep.tmp", ".process.json.1.tmp"]:
        (run.path / name).write_bytes(b"partial")
    with pytest.raises(RuntimeError, match="lock"):
        run.remove_stale_temps()   # only the holder of the lock may delete anything
    run.lock()
    assert run.remove_stale_temps() == sorted(stale)
    run.unlock()
    assert sorted(os.listdir(run.path)) == [".process.json.1.tmp", "keep.tmp"]

    for name in stale:
        (run.path / name).write_bytes(b"partial")
    cfg = Config().override(method="natural", student="smallcnn", train_subset=64, batch_size=32, epochs=1,
                            eval_size=16, eval_pgd_steps=0, test_size=0, device="cpu", progress=False,
                            checkpoint_every=0, threads=1)
    Trainer(cfg, RunDir(run.path)).fit()
    assert sorted(n for n in os.listdir(run.path) if n.endswith(".tmp")) == [".process.json.1.tmp", "keep.tmp"]


def test_truncate_keeps_the_last_completed_epochs_record(tmp_path):
    run = RunDir(tmp_path / "r")
    for s in range(1, 9):
        run.append({"kind": "step", "step": s})
        if s % 4 == 0:
            run.append({"kind": "epoch", "epoch": s // 4, "step": s})
    run.close()
    run.truncate_metrics(step=6, epoch=1)   # a checkpoint inside epoch 2: epoch 1 is complete
    kept = run.read_metrics()
    assert [r["step"] for r in kept if r["kind"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in kept if r["kind"] == "epoch"] == [1]
    run.truncate_metrics(step=0, epoch=0)   # no checkpoint at all: nothing is kept
    assert run.read_metrics() == []


@pytest.mark.parametrize("record, said", [
    ({"epoch": 2, "student_top_class_share": 0.97}, "after epoch 2 the student predicts one class for 97%"),
    ({"epoch": 2.0, "student_top_class_share": 0.9}, "after epoch 2 the student predicts one class for 90%"),
    ({"epoch": 2, "student_top_class_share": 0.89}, None),
    ({"epoch": 2, "student_top_class_share": float("nan")}, None),   # a gap in a table of older records
    ({"epoch": 2}, None),                                             # a record from before the measure
])
def test_collapse_note(record, said):
    from ciard.runlog import collapse_note
    note = collapse_note(record)
    assert (note is None) if said is None else (note.startswith(said) and "smaller learning rate" in note)
