"""The zoo's hyperparameter rules (tools/choose_lr.py, tools/choose_kdiga_gamma.py) read pilot
runs' validation records only, and pick what the records say is best."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import choose_kdiga_gamma  # noqa: E402
import choose_lr  # noqa: E402


def _pilot(root: Path, name: str, scores: list[tuple[float, float]], state: str = "finished",
           lr: float = 0.2, gamma: float = 1.0) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": state}))
    records = [{"kind": "step", "step": 1, "loss": 2.0}]
    records += [{"kind": "epoch", "epoch": i + 1, "student_clean": c, "student_pgd": p, "score": (c + p) / 2}
                for i, (c, p) in enumerate(scores)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "config.json").write_text(json.dumps({
        "optim": {"epochs": 2, "batch_size": 128, "lr_schedule": "cosine", "lr": lr},
        "data": {"train_subset": 10000}, "attack": {"pgd_steps": 5},
        "method": {"kdiga_alpha": 0.5, "kdiga_temp": 1.0, "kdiga_gamma": gamma}}))


def test_the_gamma_rule_takes_each_pilots_best_epoch_and_skips_unfinished_ones(tmp_path):
    _pilot(tmp_path, "gamma-kdiga-0.1", [(0.60, 0.10), (0.70, 0.12)], gamma=0.1)   # best 0.41
    _pilot(tmp_path, "gamma-kdiga-1", [(0.55, 0.30), (0.50, 0.25)])                 # best 0.425 (epoch 1)
    _pilot(tmp_path, "gamma-kdiga-10", [(0.90, 0.90)], state="running", gamma=10)   # unfinished: ignored
    _pilot(tmp_path, "lr-ciard-0.2", [(0.99, 0.99)])                                # another rule's pilot
    result = choose_kdiga_gamma.choose(tmp_path)
    assert result["chosen_gamma"] == 1.0
    assert set(result["runs"]) == {"0.1", "1"}
    assert result["runs"]["1"]["epoch"] == 1 and result["runs"]["1"]["score"] == pytest.approx(0.425)
    assert result["pilot_budget"]["lr"] == 0.2 and result["pilot_budget"]["kdiga_alpha"] == 0.5


def test_a_gamma_tie_goes_to_the_weaker_alignment(tmp_path):
    for g in ("10", "2"):   # "10" sorts before "2" as a string: the order must be numeric
        _pilot(tmp_path, f"gamma-kdiga-{g}", [(0.5, 0.3)], gamma=float(g))
    assert choose_kdiga_gamma.choose(tmp_path)["chosen_gamma"] == 2.0


def test_no_finished_gamma_pilot_is_refused(tmp_path):
    _pilot(tmp_path, "gamma-kdiga-1", [(0.5, 0.3)], state="stopped")
    with pytest.raises(SystemExit, match="no finished gamma-kdiga"):
        choose_kdiga_gamma.choose(tmp_path)


def test_the_lr_rule_averages_over_methods_and_needs_every_method(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    root = tmp_path / "runs"
    # lr 0.5 is best for ciard alone, 0.2 on the mean; 1.0 lacks a method and cannot be chosen
    _pilot(root, "lr-ciard-0.2", [(0.60, 0.30)], lr=0.2)
    _pilot(root, "lr-rslad-0.2", [(0.50, 0.30)], lr=0.2)
    _pilot(root, "lr-ciard-0.5", [(0.70, 0.30)], lr=0.5)
    _pilot(root, "lr-rslad-0.5", [(0.30, 0.20)], lr=0.5)
    _pilot(root, "lr-ciard-1.0", [(0.95, 0.95)], lr=1.0)
    choose_lr.main(str(root))
    printed = capsys.readouterr()
    assert printed.out.strip() == "0.2"
    rule = json.loads((tmp_path / "checkpoints" / "zoo-lr-rule.json").read_text())
    assert rule["chosen_lr"] == 0.2 and rule["methods"] == ["ciard", "rslad"]
    assert set(rule["mean_score"]) == {"0.2", "0.5"}
    # CIARD alone would have taken 0.5; 0.2 is the smallest complete candidate: both are recorded
    assert rule["best_lr_by_method"] == {"ciard": 0.5, "rslad": 0.2}
    assert rule["chosen_at_edge"] is True and "smallest candidate" in printed.err
