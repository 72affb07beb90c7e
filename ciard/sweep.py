"""Hyperparameter sweeps with Optuna: ``python -m ciard sweep --study NAME --trials N``.

Each trial is an ordinary run in the run store (launched exactly as the app launches one),
so the Runs page lists, follows and compares trials like any other run. The sweep process
follows the trial's metrics: after every epoch it reports the validation objective

    objective = w * clean + (1 - w) * PGD        (validation split, the trainer's epoch check)

to Optuna and, if the pruner says the trial is weak, stops the run (the app's Stop).
A trial's value is its best epoch's objective.

Storage: SQLite in the runs folder by default; any Optuna RDB URL (e.g.
``postgresql://user:pw@host/db``) lets many ``ciard sweep`` workers on many machines share
one study (each worker runs its trials in its own run store).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import FIELD_INDEX, Config, ConfigError, validate
from .runqueue import start_queued
from .runs import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Param:
    """One dimension of the search space: a float/int range (optionally log) or choices."""
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    kind: str = "float"                  # float | int | choice
    choices: tuple[Any, ...] = ()

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


#: the default space: CIARD's own knobs (push loss, ITT, the train attack's eps warm-up)
DEFAULT_SPACE: tuple[Param, ...] = (
    Param("push_weight", 0.1, 4.0, log=True),
    Param("push_temp", 1.0, 10.0),
    Param("itt_lr", 1e-4, 1e-2, log=True),
    Param("eps_warmup", 0.0, 0.5),
)


#: the default space of a sweep whose base config uses another method: that method's own knobs
#: (CIARD's push and ITT settings do nothing there), plus the eps warm-up where it attacks
METHOD_SPACES: dict[str, tuple[Param, ...]] = {
    "dgad": (Param("dgad_beta", 0.1, 10.0, log=True), Param("eps_warmup", 0.0, 0.5)),
    "adaad": (Param("adaad_alpha", 0.5, 1.0), Param("eps_warmup", 0.0, 0.5)),
    "kdiga": (Param("kdiga_gamma", 0.1, 1000.0, log=True), Param("kdiga_alpha", 0.0, 1.0),
              Param("kdiga_temp", 1.0, 10.0)),
    "peeraid": (Param("peeraid_temp", 1.0, 10.0), Param("peeraid_gamma2", 0.01, 1.0, log=True),
                Param("peeraid_lambda3", 0.1, 10.0, log=True), Param("eps_warmup", 0.0, 0.5)),
}


def default_space(method: str) -> tuple[Param, ...]:
    """The space a sweep of ``method`` explores when no ``--space`` is given."""
    return METHOD_SPACES.get(method, DEFAULT_SPACE)


def parse_space(spec: dict[str, Any]) -> tuple[Param, ...]:
    """A space from JSON: {"push_weight": {"low": 0.1, "high": 4, "log": true},
    "method": {"choices": ["ciard", "mtard"]}, "pgd_steps": {"low": 2, "high": 10, "int": true}}."""
    params = []
    for name, p in spec.items():
        if name not in FIELD_INDEX:
            raise ConfigError(f"search space: '{name}' is not a config field")
        if not isinstance(p, dict):
            raise ConfigError(f"search space: '{name}' needs an object with low/high or choices")
        if "choices" in p:
            if not p["choices"]:
                raise ConfigError(f"search space: '{name}' has no choices")
            params.append(Param(name, kind="choice", choices=tuple(p["choices"])))
            continue
        try:
            low, high = float(p["low"]), float(p["high"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"search space: '{name}' needs numeric 'low' and 'high'") from None
        if not low < high or (p.get("log") and low <= 0):
            raise ConfigError(f"search space: '{name}' needs low < high (and low > 0 when log)")
        params.append(Param(name, low, high, bool(p.get("log")), "int" if p.get("int") else "float"))
    if not params:
        raise ConfigError("search space is empty")
    return tuple(params)


def load_space(path: str | None, method: str = "ciard") -> tuple[Param, ...]:
    if not path:
        return default_space(method)
    try:
        return parse_space(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise ConfigError(f"search space file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"search space file {path} is not valid JSON: {exc}") from None


def objective_value(record: dict[str, Any], clean_weight: float) -> float:
    """The validation objective of one epoch record (clean alone when PGD was not run)."""
    clean, pgd = record.get("student_clean"), record.get("student_pgd")
    if clean is None:
        return float("nan")
    if pgd is None or pgd != pgd:
        return float(clean)
    return clean_weight * clean + (1.0 - clean_weight) * pgd


def default_storage(runs_dir: str | Path) -> str:
    return f"sqlite:///{Path(runs_dir).resolve() / 'sweeps.db'}"


class Sweep:
    def __init__(self, base: Config, study: str, *, storage: str | None = None,
                 space: tuple[Param, ...] = DEFAULT_SPACE, clean_weight: float = 0.5,
                 pruner: str = "median", runs_dir: str | Path = "runs", seed: int | None = None,
                 poll_seconds: float = 1.0) -> None:
        import optuna
        if not 0.0 <= clean_weight <= 1.0:
            raise ConfigError(f"objective clean weight {clean_weight} must be in [0, 1]")
        self.base, self.space, self.clean_weight = validate(base), space, clean_weight
        self.store = RunStore(runs_dir)
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        self.storage = storage or default_storage(runs_dir)
        self.poll = poll_seconds
        pruners = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                   "none": optuna.pruners.NopPruner}
        if pruner not in pruners:
            raise ConfigError(f"unknown pruner '{pruner}'; choose one of: {', '.join(pruners)}")
        self.study = optuna.create_study(study_name=study, storage=self.storage, direction="maximize",
                                         load_if_exists=True, pruner=pruners[pruner](),
                                         sampler=optuna.samplers.TPESampler(seed=seed))
        self._current: set[str] = set()          # trials in flight (n_jobs threads)

    # -- one trial ------------------------------------------------------------------
    def config_for(self, trial) -> Config:
        values = {p.name: p.suggest(trial) for p in self.space}
        try:
            return validate(self.base.override(**values))
        except ConfigError as exc:   # e.g. a choice that does not fit the base config
            trial.set_user_attr("invalid", str(exc))
            raise

    def objective(self, trial) -> float:
        import optuna
        cfg = self.config_for(trial)
        name = f"{self.study.study_name}-t{trial.number:03d}"
        info = self.store.launch(cfg, name, queued=True)   # the store's queue bounds trials at once
        self._current.add(info.name)
        trial.set_user_attr("run", info.name)
        trial.set_user_attr("run_dir", str(info.path.resolve()))
        log.info("trial %d: run %s with %s", trial.number, info.name,
                 ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()))
        best, offset, reported = float("-inf"), 0, set()
        while True:
            start_queued(self.store)
            records, offset = self.store.read_metrics(info.name, offset)
            for r in records:
                if r.get("kind") != "epoch" or r["epoch"] in reported:
                    continue
                reported.add(r["epoch"])
                value = objective_value(r, self.clean_weight)
                if math.isfinite(value):
                    best = max(best, value)
                    trial.report(value, r["epoch"])
                    log.info("trial %d epoch %d: objective %.4f", trial.number, r["epoch"], value)
                if trial.should_prune():
                    self.store.stop(info.name)
                    self._wait(info.name)
                    self._current.discard(info.name)
                    log.info("trial %d pruned at epoch %d", trial.number, r["epoch"])
                    raise optuna.TrialPruned()
            state = self.store.get(info.name).state
            if state in ("finished", "stopped", "failed"):
                # a last read: epoch records written just before the end
                tail, offset = self.store.read_metrics(info.name, offset)
                if tail:
                    continue
                break
            time.sleep(self.poll)
        self._current.discard(info.name)
        if state != "finished":
            raise RuntimeError(f"run {info.name} {state}: {self.store.get(info.name).error or 'see its log'}")
        if not math.isfinite(best):
            raise RuntimeError(f"run {info.name} wrote no epoch evaluation")
        return best

    def _wait(self, name: str, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while self.store.get(name).state in ("running", "starting") and time.time() < deadline:
            time.sleep(self.poll)

    # -- the sweep --------------------------------------------------------------------
    def run(self, trials: int, jobs: int = 1) -> Any:
        try:
            self.study.optimize(self.objective, n_trials=trials, n_jobs=jobs, catch=(RuntimeError,))
        except KeyboardInterrupt:
            for name in sorted(self._current):
                log.warning("interrupted: stopping run %s", name)
                self.store.stop(name)
            for name in sorted(self._current):
                self._wait(name)
            raise
        return self.study


def summary(study) -> str:
    import optuna
    rows = [f"study {study.study_name}: {len(study.trials)} trials"]
    for t in study.trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        rows.append(f"  #{t.number:<3} {t.state.name:<9} {value:>8}  {t.user_attrs.get('run', '-'):<24} {params}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        b = study.best_trial
        rows.append(f"best: trial {b.number} ({b.user_attrs.get('run')}), objective {b.value:.4f}")
    return "\n".join(rows)
