"""Tuning from the app (issue 16): every form problem at once by label, the live header's
hyperparameters, the Runs table a researcher sorts and clones from, seed groups, sweeps."""
from __future__ import annotations

import json
import time

from ciard.runs import RunStore
from ciard.studio import forms
from test_app import _app, _texts, _write_run


# -- the form ------------------------------------------------------------------------------
def test_three_bad_values_give_three_messages_at_once_by_label(runs_dir):
    at = _app("app_pages/train.py")
    at.text_input(key="tf_push_temp").set_value("-1")
    at.text_input(key="tf_eps").set_value("2")
    at.number_input(key="tf_epochs").set_value(0)
    at.button(key="train_start").click().run()
    assert not at.exception
    errors = _texts(at.error)
    assert any("3 problems" in e for e in errors), errors
    for message in ("T_push = -1 must be positive", "eps (L-inf) = 2 must be in (0, 1]",
                    "Epochs = 0 must be at least 1"):
        assert any(e.startswith(message) for e in errors), (message, errors)
    assert not any("push_temp" in e for e in errors), errors   # the form's label, not the config name
    titles = [e.label for e in at.expander]
    assert "CIARD · 1 problem" in titles and "Optimisation · 1 problem" in titles, titles
    assert RunStore(runs_dir).names() == []
    # fixed values clear their messages
    at.text_input(key="tf_push_temp").set_value("5")
    at.text_input(key="tf_eps").set_value("8/255")
    at.number_input(key="tf_epochs").set_value(1)
    at.text_input(key="tf_name").set_value("")  # the run name field is optional
    at.selectbox(key="train_preset").set_value("demo").run()


def test_field_errors_files_a_problem_between_fields_under_its_field():
    values = forms.preset_values("demo")
    values.update(student="smallcnn", lr="-1")   # the demo's student_init is a ResNet-20
    errors = forms.field_errors("demo", values, device="cpu")
    assert set(errors) == {"lr", "student"}, errors
    assert errors["lr"].startswith("Learning rate = -1")
    assert "Student starts from" in errors["student"] and "student_init" not in errors["student"]
    assert forms.field_errors("demo", forms.preset_values("demo"), device="cpu") == {}


def test_live_header_shows_what_differs_from_the_preset_and_the_whole_state(runs_dir):
    _write_run(runs_dir, "tuned", push_weight=2.5, push_temp=7.0)
    at = _app("app_pages/train.py")
    text = " ".join(_texts(at.markdown))
    assert "Changed from preset demo: Epochs = 2 · Push weight λ = 2.5 · T_push = 7" in text.replace("*", ""), text
    assert "finished</div>" in text     # the state in full, not a truncated metric


# -- the Runs table ----------------------------------------------------------------------------
def _frame(at, pick):
    frames = [d.value for d in at.dataframe]
    frames = [f.data if hasattr(f, "data") else f for f in frames]
    return next(f for f in frames if pick(f))


def _scored_run(runs_dir, name, pgd, **overrides):
    d = _write_run(runs_dir, name, **overrides)
    lines = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    for r in lines:
        if r["kind"] == "final":
            r["test_pgd20"] = pgd
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_runs_table_has_varying_hyperparameters_sorts_and_marks_the_best(runs_dir):
    _scored_run(runs_dir, "low", 0.10, push_weight=0.5)
    _scored_run(runs_dir, "high", 0.30, push_weight=2.0)
    _scored_run(runs_dir, "mid", 0.20, push_weight=1.0)
    at = _app("app_pages/runs.py")
    at.selectbox(key="runs_best_by").set_value("test PGD-20 %").run()
    at.selectbox(key="runs_sort").set_value("test PGD-20 %").run()
    table = _frame(at, lambda df: "name" in df.columns)
    assert list(table["name"]) == ["high", "mid", "low"]           # sorted, descending
    assert list(table["Push weight λ"]) == [2.0, 1.0, 0.5]          # the one setting that differs
    assert "T_push" not in table.columns                           # the same in every run: no column
    assert list(table["best"]) == ["★", "", ""]
    at.toggle(key="runs_sort_desc").set_value(False).run()
    assert list(_frame(at, lambda df: "name" in df.columns)["name"]) == ["low", "mid", "high"]
    assert any("Best by test PGD-20 %: high (30.00)" in c.replace("*", "") for c in _texts(at.caption))


def test_a_run_is_cloned_into_the_form_exported_and_given_as_a_command(runs_dir):
    _write_run(runs_dir, "tuned", push_weight=2.5, eps=4 / 255, seed=7)
    at = _app("app_pages/runs.py")
    at.selectbox(key="runs_action_run").set_value("tuned").run()
    command = [c.value for c in at.code if "ciard train" in c.value]
    assert command == ["python -m ciard train --preset demo --epochs 2 --seed 7 --eps 4/255 --push-weight 2.5 "
                       "--name tuned"], command
    # the command gives this run's config again
    import shlex

    from ciard.cli import build_parser, config_from_args
    rebuilt = config_from_args(build_parser().parse_args(shlex.split(command[0])[3:])).flat()
    stored = forms.flat_config(RunStore(runs_dir).get("tuned").config)
    assert {k: v for k, v in rebuilt.items() if k not in ("out_dir", "progress")} == \
        {k: v for k, v in stored.items() if k not in ("out_dir", "progress")}
    exported = [b for b in at.get("download_button") if "config JSON" in str(b.proto.label)]
    assert exported, "an export button"
    at.button(key="runs_clone").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="tf_push_weight").value == "2.5"
    assert at.text_input(key="tf_eps").value == "4/255"
    assert at.number_input(key="tf_seed").value == 7
    assert at.selectbox(key="train_preset").value == "demo"


def test_csv_exports_carry_the_hyperparameters(runs_dir):
    import io

    import pandas as pd

    from ciard.studio.metrics import metrics_csv, runs_table
    _write_run(runs_dir, "a", push_weight=0.5)
    _write_run(runs_dir, "b", push_weight=2.0)
    store = RunStore(runs_dir)
    df = pd.read_csv(io.BytesIO(metrics_csv(store, ["a", "b"])))
    assert set(df.loc[df["run"] == "a", "hp.push_weight"]) == {0.5}
    assert set(df.loc[df["run"] == "b", "hp.push_weight"]) == {2.0}
    assert "hp.push_temp" in df and "hp.name" not in df
    table = runs_table(store.list(), hyper="all")
    assert {"Push weight λ", "T_push", "Learning rate"} <= set(table.columns)


# -- seed groups, the queue ---------------------------------------------------------------------
def test_mean_interval_is_the_student_t_interval():
    from ciard.stats import mean_interval
    m = mean_interval([10.0, 12.0, 14.0])
    assert m.n == 3 and m.mean == 12.0
    assert abs((m.high - m.mean) - 4.302653 * 2.0 / 3 ** 0.5) < 1e-4    # t(0.975, 2) * s / sqrt(n)
    assert mean_interval([5.0]).low != mean_interval([5.0]).low       # one value: no interval (nan)


def test_seed_groups_show_means_and_say_not_established_when_intervals_overlap(runs_dir):
    for i, pgd in enumerate((0.10, 0.30, 0.20)):       # wide spread: overlaps group b
        _scored_run(runs_dir, f"a-s{i}", pgd)
        (runs_dir / f"a-s{i}" / "group.json").write_text('{"group": "a-seeds"}')
    for i, pgd in enumerate((0.21, 0.22, 0.23)):
        _scored_run(runs_dir, f"b-s{i}", pgd, push_weight=2.0)
        (runs_dir / f"b-s{i}" / "group.json").write_text('{"group": "b-seeds"}')
    for i, pgd in enumerate((0.50, 0.51, 0.52)):
        _scored_run(runs_dir, f"c-s{i}", pgd, push_weight=3.0)
        (runs_dir / f"c-s{i}" / "group.json").write_text('{"group": "c-seeds"}')
    at = _app("app_pages/runs.py")
    at.selectbox(key="runs_group_score").set_value("test PGD-20 %").run()
    groups = _frame(at, lambda df: "group" in df.columns and "95 % interval" in df.columns)
    assert list(groups["group"]) == ["a-seeds", "b-seeds", "c-seeds"]
    assert list(groups["mean test PGD-20 %"]) == [20.0, 22.0, 51.0]
    info = _texts(at.info)
    assert any(t.startswith("a-seeds vs b-seeds") and "not established" in t for t in info), info
    assert any(t.startswith("b-seeds vs c-seeds") and "c-seeds is higher" in t for t in _texts(at.success))


def test_repeat_with_seeds_queues_a_group_that_runs_one_at_a_time(runs_dir):
    from ciard import runqueue
    from store_support import tiny_config, wait_for
    store = RunStore(runs_dir)
    store.launch(tiny_config(epochs=1, train_subset=128, name="base"), "base")
    wait_for(store, "base", lambda i: i.state == "finished", timeout=120)
    at = _app("app_pages/runs.py")
    assert at.number_input(key="runs_queue_n").value == 1          # visible, one at a time by default
    at.selectbox(key="runs_action_run").set_value("base")
    at.number_input(key="runs_repeat_n").set_value(3)
    at.button(key="runs_repeat").click().run()
    assert not at.exception, [e.value for e in at.exception]
    names = ["base-s1", "base-s2", "base-s3"]
    assert any("Queued 3 runs as group base-seeds" in s.replace("*", "") for s in _texts(at.success))
    assert all(store.get(n).group == "base-seeds" for n in names)
    assert [store.get(n).config["run"]["seed"] for n in names] == [1, 2, 3]
    most_active = 0
    deadline = time.time() + 240
    while time.time() < deadline and any(store.get(n).state != "finished" for n in names):
        most_active = max(most_active, sum(store.get(n).state in ("starting", "running") for n in names))
        time.sleep(0.2)
    assert [store.get(n).state for n in names] == ["finished"] * 3, [store.log_tail(n) for n in names]
    assert most_active == 1                    # the queue started them one at a time
    at.run()
    assert "base-seeds" in list(_frame(at, lambda df: "95 % interval" in df.columns)["group"])
    # the concurrency is changeable from the page, and the file follows
    at.number_input(key="runs_queue_n").set_value(2).run()
    assert runqueue.concurrency(store) == 2


# -- sweeps -------------------------------------------------------------------------------------
def _tiny_form(at):
    """The Train form holding a seconds-long natural SmallCNN run (as "Clone into the form" leaves it)."""
    tiny = dict(method="natural", student="smallcnn", student_init="", epochs=1, train_subset=128, eval_size=32,
                eval_pgd_steps=1, test_size=0)
    for field, value in tiny.items():
        at.session_state[forms.KEY_PREFIX + field] = value
    at.switch_page("app_pages/sweep.py").run()


def test_sweep_space_editor_is_prefilled_and_a_bad_space_is_one_line(runs_dir):
    from ciard.studio.sweeps import default_space_rows, space_from_rows
    from ciard.sweep import DEFAULT_SPACE
    at = _app("app_pages/sweep.py")
    assert at.number_input(key="sweep_queue_n").value == 1
    assert any("No sweeps yet" in i for i in _texts(at.info))
    assert [r["setting"] for r in default_space_rows()] == [p.name for p in DEFAULT_SPACE]
    assert space_from_rows(default_space_rows())["push_weight"] == {"low": 0.1, "high": 4.0, "log": True, "int": False}
    import pytest

    from ciard.config import ConfigError
    with pytest.raises(ConfigError, match="'no_such' is not a config field"):
        space_from_rows([{"setting": "no_such", "low": 1, "high": 2}])
    with pytest.raises(ConfigError, match="needs low < high"):
        space_from_rows([{"setting": "lr", "low": 2, "high": 1}])


def test_a_two_trial_sweep_from_the_page_lists_trials_draws_figures_promotes(runs_dir):
    from ciard.studio.sweeps import sweep_running
    at = _app()
    _tiny_form(at)
    at.text_input(key="sweep_study").set_value("apptest")
    at.selectbox(key="sweep_base").set_value("Train form (as last started or cloned)")
    at.number_input(key="sweep_trials").set_value(2)
    at.button(key="sweep_start").click().run()
    assert not at.exception and not at.error, (_texts(at.error), [e.value for e in at.exception])
    store = RunStore(runs_dir)
    deadline = time.time() + 240
    while sweep_running(store, "apptest") and time.time() < deadline:
        time.sleep(1)
    assert not sweep_running(store, "apptest"), (runs_dir / "sweeps" / "apptest.log").read_text()
    at.run()
    trials = _frame(at, lambda df: "trial" in df.columns)
    assert list(trials["trial"]) == [0, 1] and list(trials["state"]) == ["complete", "complete"], trials
    assert set(trials["run"]) == {"apptest-t000", "apptest-t001"} and set(trials["run state"]) == {"finished"}
    assert {"push_weight", "push_temp", "itt_lr", "eps_warmup"} <= set(trials.columns)
    cfg = store.get("apptest-t000").config
    assert cfg["method"]["method"] == "natural" and cfg["data"]["train_subset"] == 128
    at.toggle(key="sweep_figures").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.label for t in at.tabs] == ["Optimisation history", "Parallel coordinates",
                                          "Parameter importances", "Slices"]
    assert len(at.get("plotly_chart")) >= 3
    best = max(trials.itertuples(), key=lambda t: t.objective).run
    at.button(key="sweep_promote").click().run()
    assert at.session_state["sb_promoted"]["run"] == best       # this session's student ...
    assert store.active().get("run") != best                     # ... and nothing shared written


def test_a_sweep_that_has_not_created_its_study_is_listed_and_said_so(runs_dir):
    from ciard.studio.sweeps import load_study, studies
    (runs_dir / "sweeps").mkdir()
    (runs_dir / "sweeps" / "early.json").write_text('{"pid": null, "started": 1}')
    (runs_dir / "sweeps" / "early.log").write_text("error: something one line\n")
    store = RunStore(runs_dir)
    assert studies(store) == ["early"] and load_study(store, "early") is None
    at = _app("app_pages/sweep.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("ended before it created its study" in e for e in _texts(at.error)), _texts(at.error)
    assert any("something one line" in c.value for c in at.code)


def test_queue_command_sets_the_concurrency_or_says_why_not(tmp_path, capsys):
    from ciard import runqueue
    from ciard.cli import main
    assert main(["queue", "--runs-dir", str(tmp_path), "--concurrency", "0"]) == 2
    assert "concurrency = 0 must be a whole number of at least 1" in capsys.readouterr().err
    runqueue.set_concurrency(RunStore(tmp_path), 3)
    assert runqueue.concurrency(RunStore(tmp_path)) == 3
