"""`python -m ciard sweep`: Optuna trials as ordinary runs in the run store, pruned by epoch."""
import json

import optuna
import pytest

from ciard.cli import main
from ciard.config import Config, ConfigError
from ciard.runs import RunStore
from ciard.sweep import DEFAULT_SPACE, objective_value, parse_space

TINY = ["--preset", "demo", "--student", "smallcnn", "--student-init", "", "--train-subset", "128", "--epochs", "2",
        "--pgd-steps", "1", "--eval-size", "64", "--eval-pgd-steps", "2", "--test-size", "0", "--threads", "1"]


def test_a_two_trial_sweep_runs_each_trial_as_a_run_in_the_store(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["sweep", "--study", "s", "--trials", "2", "--runs-dir", str(runs), "--sampler-seed", "0",
                 "--pruner", "none", *TINY]) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{runs / 'sweeps.db'}")
    assert len(study.trials) == 2 and all(t.state.name == "COMPLETE" for t in study.trials)
    infos = {i.name: i for i in RunStore(runs).list()}
    assert set(infos) == {"s-t000", "s-t001"}
    for t in study.trials:
        info = infos[t.user_attrs["run"]]
        assert info.state == "finished"
        # the run's config holds the suggested values; its value is the best epoch's objective
        cfg = json.loads((info.path / "config.json").read_text())
        flat = {k: v for section in cfg.values() for k, v in section.items()}
        for name, value in t.params.items():
            assert flat[name] == pytest.approx(value)
        epochs = [r for r in map(json.loads, (info.path / "metrics.jsonl").read_text().splitlines())
                  if r["kind"] == "epoch"]
        assert t.value == pytest.approx(max(objective_value(e, 0.5) for e in epochs))
        assert list(t.intermediate_values) == [1, 2]
    assert f"best: trial {study.best_trial.number}" in out
    # a second worker joins the same study (same storage) and adds its trial
    assert main(["sweep", "--study", "s", "--trials", "1", "--runs-dir", str(runs), "--pruner", "none", *TINY]) == 0
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{runs / 'sweeps.db'}").trials) == 3


def test_weak_trials_are_pruned_and_their_runs_stopped(tmp_path):
    from ciard.config import preset
    from ciard.sweep import Sweep
    sweep = Sweep(preset("demo").override(student="smallcnn", student_init=None, train_subset=256, epochs=3, pgd_steps=1,
                                          eval_size=64, eval_pgd_steps=2, test_size=0, threads=1),
                  "p", runs_dir=tmp_path, seed=0, space=parse_space({"lr": {"low": 1e-4, "high": 2e-4}}))
    # two strong completed trials make the median; a tiny lr trains far below it
    for value in (0.9, 0.8):
        sweep.study.add_trial(optuna.trial.create_trial(
            params={"lr": 1.5e-4}, distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 2e-4)},
            value=value, intermediate_values={1: value, 2: value, 3: value}))
    sweep.run(1)
    trial = sweep.study.trials[-1]
    assert trial.state.name == "PRUNED"
    info = RunStore(tmp_path).get(trial.user_attrs["run"])
    assert info.state == "stopped" and info.epoch < 3


def test_search_space_errors_are_one_clear_line(tmp_path):
    assert [p.name for p in DEFAULT_SPACE] == ["push_weight", "push_temp", "itt_lr", "eps_warmup"]
    for spec, msg in [({"nope": {"low": 0, "high": 1}}, "not a config field"),
                      ({"push_weight": {"low": 2, "high": 1}}, "low < high"),
                      ({"itt_lr": {"low": 0, "high": 1, "log": True}}, "low > 0"),
                      ({"method": {"choices": []}}, "no choices"), ({}, "empty")]:
        with pytest.raises(ConfigError, match=msg):
            parse_space(spec)
    space = parse_space({"method": {"choices": ["ciard", "mtard"]}, "pgd_steps": {"low": 1, "high": 5, "int": True}})
    assert [p.kind for p in space] == ["choice", "int"]
    bad = tmp_path / "space.json"
    bad.write_text("{not json")
    assert main(["sweep", "--study", "x", "--space", str(bad), "--runs-dir", str(tmp_path)]) == 2
    assert main(["sweep", "--study", "x", "--trials", "0", "--runs-dir", str(tmp_path)]) == 2


def test_each_new_method_sweeps_its_own_knobs():
    """A sweep of dgad, adaad, kdiga or peeraid explores that method's weights (not CIARD's push
    and ITT, which it ignores); both ends of every range make a valid config."""
    from ciard.config import validate
    from ciard.sweep import default_space
    assert default_space("ciard") == DEFAULT_SPACE and default_space("mtard") == DEFAULT_SPACE
    for method in ("dgad", "adaad", "kdiga", "peeraid"):
        space = default_space(method)
        assert any(p.name.startswith(method + "_") for p in space), method
        assert not {"push_weight", "push_temp", "itt_lr"} & {p.name for p in space}
        for end in ("low", "high"):
            validate(Config().override(method=method, **{p.name: getattr(p, end) for p in space}))
