"""--log tensorboard,mlflow: every record of the run store also reaches the trackers."""
import json

import pytest

from ciard.cli import main
from ciard.tracking import Trackers, scalars


def test_a_run_logs_every_metric_to_tensorboard_and_mlflow(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["train", "--preset", "demo", "--student", "smallcnn", "--student-init", "", "--train-subset", "256", "--epochs", "2",
                 "--pgd-steps", "1", "--eval-size", "64", "--eval-pgd-steps", "2", "--test-size", "64",
                 "--threads", "1", "--eps-warmup", "0.5", "--log", "tensorboard,mlflow",
                 "--out-dir", str(tmp_path), "--name", "logged", "--no-progress"]) == 0
    run = tmp_path / "logged"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(steps) == 4 and len(epochs) == 2 and records[-1]["kind"] == "final"
    # the eps warm-up: the training attack's eps grows to eps over the first half
    assert [round(r["train_eps"] * 255, 3) for r in steps] == [0.0, 4.0, 8.0, 8.0]

    ea = EventAccumulator(str(run / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {f"train/{k}" for k in ("loss", "loss_push", "tau_adv", "lr", "train_eps")} <= tags
    assert [e.value for e in ea.Scalars("train/loss")] == pytest.approx([r["loss"] for r in steps])
    assert [e.step for e in ea.Scalars("val/student_pgd")] == [r["step"] for r in epochs]
    assert "test/test_pgd20" in tags

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (mrun,) = client.search_runs([client.get_experiment_by_name("ciard").experiment_id])
    assert mrun.info.run_name == "logged" and mrun.info.status == "FINISHED"
    assert mrun.data.params["method.push_weight"] == "1.0"
    history = client.get_metric_history(mrun.info.run_id, "train.loss")
    assert [m.value for m in history] == pytest.approx([r["loss"] for r in steps])
    assert mrun.data.metrics["val.student_clean"] == pytest.approx(epochs[-1]["student_clean"])


def test_a_broken_tracker_is_reported_and_dropped_never_failing_the_run(tmp_path, caplog):
    class Boom:
        def log(self, record):
            raise OSError("disk full")

        def close(self, status):
            pass
    t = Trackers("", tmp_path, {})
    t.active["boom"] = Boom()
    t.log({"kind": "step", "step": 1, "loss": 1.0})
    assert not t.active and "switching it off" in caplog.text
    assert scalars({"kind": "epoch", "step": 3, "student_pgd": float("nan"), "student_clean": 0.5, "ok": True}) == \
        {"val/student_clean": 0.5}


def test_an_unknown_tracker_is_a_config_error(tmp_path):
    assert main(["train", "--preset", "demo", "--log", "wandb", "--print-config"]) == 2
