"""nan and inf: refused as settings (CLI, config file, form), and a run whose loss becomes
non-finite stops as failed, naming the step and the loss term, without saving that state."""
import json

import pytest

from ciard.cli import main
from ciard.config import Config, ConfigError, validate
from ciard.runlog import RunDir
from ciard.studio import forms
from ciard.trainer import Trainer, TrainingDiverged


@pytest.mark.parametrize("flag, value", [("--lr", "nan"), ("--lr", "inf"), ("--push-weight", "nan"),
                                         ("--weight-decay", "nan"), ("--eps", "nan"), ("--itt-lr", "-inf")])
def test_cli_refuses_non_finite_settings(capsys, tmp_path, flag, value):
    code = main(["train", "--out-dir", str(tmp_path / "runs"), f"{flag}={value}", "--print-config"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "is not a finite number" in err or "must be in" in err, err
    assert not (tmp_path / "runs").exists()


def test_config_file_with_1e400_is_refused(capsys, tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"optim": {"lr": 1e400}}')
    code = main(["train", "--config", str(path), "--print-config"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: lr = inf is not a finite number"
    path.write_text('{"epochs": 1e400}')
    code = main(["train", "--config", str(path), "--print-config"])
    err = capsys.readouterr().err
    assert code == 2 and "epochs = inf is not a valid int" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("field, value", [("lr", "nan"), ("push_weight", "inf"), ("itt_lr", "NaN")])
def test_train_form_refuses_non_finite_values(field, value):
    with pytest.raises(ConfigError, match=f"{field} = .* is not a finite number"):
        forms.build_config("demo", {**forms.preset_values("demo"), field: value})


def test_validation_refuses_a_non_finite_value_set_in_code():
    with pytest.raises(ConfigError, match="weight_decay = nan"):
        validate(Config().override(weight_decay=float("nan")))


def test_a_diverging_run_fails_at_the_step_and_term_that_went_non_finite(tmp_path):
    cfg = Config().override(method="natural", student="smallcnn", train_subset=128, epochs=2, batch_size=32,
                            lr=1e30, eval_size=32, eval_pgd_steps=0, test_size=0, precision="fp32", device="cpu",
                            out_dir=str(tmp_path), progress=False, checkpoint_every=1, threads=1)
    with pytest.raises(TrainingDiverged, match=r"step (\d+): loss_ce is (nan|inf|-inf)"):
        Trainer(cfg, RunDir(tmp_path / "r")).fit()
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "loss_ce" in status["error"] and "step" in status["error"]
    assert not (tmp_path / "r" / "best.pt").exists()
    records = RunDir(tmp_path / "r").read_metrics()
    assert all(r["loss"] == r["loss"] and abs(r["loss"]) != float("inf") for r in records)


def test_the_cli_says_so_in_one_line(capsys, tmp_path):
    code = main(["train", "--method", "natural", "--student", "smallcnn", "--train-subset", "64",
                 "--batch-size", "32", "--epochs", "1", "--lr", "1e30", "--eval-size", "16", "--test-size", "0",
                 "--device", "cpu", "--no-progress", "--out-dir", str(tmp_path), "--name", "d"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("error: training diverged at step") and "Traceback" not in err, err
