"""Sweeps launched from the app (no Streamlit here): the space as an editable table, the
``ciard sweep`` process, and the studies read back from Optuna's storage.

A sweep from the app is exactly ``python -m ciard sweep``: its base config and space are written
to ``<runs>/sweeps/<study>.config.json`` and ``.space.json``, its output goes to
``<runs>/sweeps/<study>.log``, and the process's pid to ``<runs>/sweeps/<study>.json``. Its
trials are queued runs in the store (the queue's concurrency bounds how many train at once).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, validate
from ..names import check_name
from ..runlog import read_json, tail_lines, write_json
from ..runs import ROOT, RunStore, pid_alive, reap_when_done
from ..sweep import DEFAULT_SPACE, Param, default_storage, parse_space

SPACE_COLUMNS = ("setting", "low", "high", "log", "int", "choices")


def default_space_rows() -> list[dict[str, Any]]:
    """The default search space as rows of the space editor."""
    return [space_row(p) for p in DEFAULT_SPACE]


def space_row(p: Param) -> dict[str, Any]:
    return {"setting": p.name, "low": p.low, "high": p.high, "log": p.log, "int": p.kind == "int",
            "choices": ", ".join(map(str, p.choices))}


def space_from_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The editor's rows as the JSON space of ``ciard sweep --space`` (checked by its parser)."""
    spec: dict[str, Any] = {}
    for row in rows:
        name = str(row.get("setting") or "").strip()
        if not name:
            continue
        if name in spec:
            raise ConfigError(f"search space: '{name}' appears twice")
        choices = str(row.get("choices") or "").strip()
        if choices:
            spec[name] = {"choices": [_choice(c.strip()) for c in choices.split(",") if c.strip()]}
        else:
            spec[name] = {"low": _number(row.get("low")), "high": _number(row.get("high")),
                          "log": bool(row.get("log")), "int": bool(row.get("int"))}
    parse_space(spec)   # the CLI's own checks and messages
    return spec


def _number(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _choice(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def sweeps_dir(store: RunStore) -> Path:
    return store.root / "sweeps"


def launch_sweep(store: RunStore, study: str, base: Config, rows: list[dict[str, Any]], *, trials: int,
                 clean_weight: float, jobs: int = 1) -> list[str]:
    """Start ``python -m ciard sweep`` for a study in its own process; the command it runs."""
    check_name(study, "study")
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials = {trials!r} must be at least 1")
    if not 0.0 <= clean_weight <= 1.0:
        raise ConfigError(f"objective clean weight {clean_weight} must be in [0, 1]")
    space = space_from_rows(rows)
    base = validate(base)
    if sweep_running(store, study):
        raise ConfigError(f"sweep '{study}' is already running")
    d = sweeps_dir(store)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{study}.config.json").write_text(base.to_json())
    (d / f"{study}.space.json").write_text(json.dumps(space, indent=2))
    argv = [sys.executable, "-m", "ciard", "sweep", "--study", study, "--trials", str(trials),
            "--clean-weight", str(clean_weight), "--jobs", str(jobs), "--runs-dir", str(store.root.resolve()),
            "--config", str(d / f"{study}.config.json"), "--space", str(d / f"{study}.space.json")]
    with open(d / f"{study}.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    reap_when_done(proc)
    write_json(d / f"{study}.json", {"pid": proc.pid, "started": time.time(), "argv": argv[1:]})
    return ["python", *argv[1:]]


def sweep_running(store: RunStore, study: str) -> bool:
    return pid_alive(read_json(sweeps_dir(store) / f"{study}.json").get("pid"))


def sweep_log(store: RunStore, study: str, lines: int = 20) -> str:
    return tail_lines(sweeps_dir(store) / f"{study}.log", lines)


def studies(store: RunStore) -> list[str]:
    """The studies in the store's Optuna storage and those launched from the app (a sweep that is
    still creating its study is one), newest launch first."""
    names = {p.name[:-len(".json")] for p in sweeps_dir(store).glob("*.json")
             if not p.name.endswith((".config.json", ".space.json"))} if sweeps_dir(store).is_dir() else set()
    if (store.root / "sweeps.db").is_file():
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        names |= {s.study_name for s in optuna.get_all_study_summaries(default_storage(store.root))}
    started = {n: read_json(sweeps_dir(store) / f"{n}.json").get("started", 0) for n in names}
    return sorted(names, key=lambda n: (-started[n], n))


def load_study(store: RunStore, study: str):
    """The Optuna study, or None while its sweep has not created it yet."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not (store.root / "sweeps.db").is_file():
        return None
    try:
        return optuna.load_study(study_name=study, storage=default_storage(store.root))
    except KeyError:
        return None


def trials_rows(study, store: RunStore) -> list[dict[str, Any]]:
    """One row per trial: number, Optuna state, objective, its run and the run's state, params."""
    rows = []
    for t in study.trials:
        run = t.user_attrs.get("run")
        try:
            run_state = store.get(run).state if run else "—"
        except KeyError:
            run_state = "deleted"
        rows.append({"trial": t.number, "state": t.state.name.lower(), "objective": t.value,
                     "run": run or "—", "run state": run_state,
                     **{k: v for k, v in sorted(t.params.items())}})
    return rows


def best_trial_run(study) -> str | None:
    """The run of the study's best completed trial (None before one completes)."""
    import optuna
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return max(done, key=lambda t: t.value).user_attrs.get("run") if done else None


def figures(study) -> dict[str, Any]:
    """Optuna's own plotly figures; a figure that needs more trials is left out (with why)."""
    import optuna.visualization as vis
    out: dict[str, Any] = {}
    for title, make in (("Optimisation history", vis.plot_optimization_history),
                        ("Parallel coordinates", vis.plot_parallel_coordinate),
                        ("Parameter importances", vis.plot_param_importances),
                        ("Slices", vis.plot_slice)):
        try:
            out[title] = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            out[title] = f"needs more completed trials ({exc})"
    return out
