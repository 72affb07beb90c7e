"""Resume: the metrics of a stopped-and-resumed run equal an uninterrupted run's, and one
trainer at a time works in a run directory."""
import pytest

from ciard.cli import main
from ciard.config import Config
from ciard.runlock import RunLock, RunBusy, in_use
from ciard.runlog import RunDir
from ciard.runs import RunStore
from ciard.trainer import Trainer
from store_support import StopAfter

#: what legitimately differs between two runs of the same config: wall clock, their own paths
CLOCK = ("time", "img_per_s", "best_checkpoint")


def _cfg(tmp_path, **kw):
    base = dict(method="natural", student="smallcnn", train_subset=128, epochs=2, batch_size=32,
                eval_size=32, eval_pgd_steps=1, test_size=0, precision="fp32", device="cpu",
                out_dir=str(tmp_path), progress=False, checkpoint_every=0, threads=1)
    base.update(kw)
    return Config().override(**base)


def _records(path):
    return [{k: v for k, v in r.items() if k not in CLOCK} for r in RunDir(path).read_metrics()]


def test_stop_in_the_last_epoch_then_resume_keeps_every_epoch_record(tmp_path):
    cfg = _cfg(tmp_path)   # 4 steps per epoch, 2 epochs
    Trainer(cfg, RunDir(tmp_path / "full")).fit()
    stopped = Trainer(cfg, StopAfter(tmp_path / "split", 6)).fit()   # during epoch 2
    assert stopped.status == "stopped" and stopped.epoch == 1
    resumed = Trainer(cfg, RunDir(tmp_path / "split")).fit(resume=True)
    assert resumed.status == "finished" and resumed.epoch == 2

    full, split = _records(tmp_path / "full"), _records(tmp_path / "split")
    assert [r["epoch"] for r in split if r["kind"] == "epoch"] == [1, 2]
    assert split == full   # steps, epochs and their values: the same run


def test_resume_before_the_first_checkpoint_starts_the_records_over(tmp_path):
    cfg = _cfg(tmp_path, epochs=1)
    run = RunDir(tmp_path / "early")
    for s in (1, 2, 3):   # what a process killed before its first last.pt had logged
        run.append({"kind": "step", "step": s, "epoch": s / 4, "loss": 9.0})
    run.close()
    Trainer(cfg, RunDir(tmp_path / "early")).fit(resume=True)
    steps = [r["step"] for r in RunDir(tmp_path / "early").read_metrics() if r["kind"] == "step"]
    assert steps == [1, 2, 3, 4]


def test_resume_of_a_run_that_is_still_training_is_refused(capsys, tmp_path):
    cfg = _cfg(tmp_path, epochs=1)
    run = RunDir(tmp_path / "busy")
    run.write_config(cfg.to_json())
    run.request_stop()
    trainer = RunLock(run.path)
    trainer.acquire()   # what a running trainer holds for its whole life
    try:
        assert in_use(run.path)
        code = main(["train", "--resume", str(run.path)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "in use by another trainer" in err, err
        assert run.stop_requested(), "the running trainer's stop request was left alone"
        with pytest.raises(RunBusy):
            Trainer(cfg, RunDir(run.path)).fit(resume=True)
        (run.path / "status.json").write_text('{"state": "stopped"}')   # even if its status says otherwise
        (run.path / "last.pt").write_bytes(b"x")
        with pytest.raises(ValueError, match="already running"):
            RunStore(tmp_path).resume("busy")
        with pytest.raises(ValueError, match="stop it first"):
            RunStore(tmp_path).delete("busy")
    finally:
        trainer.release()
    assert not in_use(run.path)
    assert not (run.path / "metrics.jsonl").exists()   # no second trainer wrote anything


def test_the_lock_is_released_when_training_ends(tmp_path):
    cfg = _cfg(tmp_path, epochs=1, train_subset=64)
    run = RunDir(tmp_path / "r")
    Trainer(cfg, run).fit()
    assert not in_use(run.path)
    RunLock(run.path).acquire()   # free for the next trainer
