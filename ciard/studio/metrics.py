"""Reading runs for the pages: following metrics, summaries, time left, config differences.

No Streamlit here: a :class:`Follower` lives in ``st.session_state`` and is advanced on each
refresh, so a page reads only the bytes appended since its last look
(:func:`ciard.runlog.read_new_records`); a browser refresh starts a new session and
therefore a new follower that reads from offset 0. Every file of a run is read through
:mod:`ciard.runlog` / :mod:`ciard.runs`.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..config import TEACHERS_NEEDED
from ..runlog import read_json, read_new_records
from ..runs import RunInfo, RunStore

#: per-epoch accuracy keys, in display order: (key, model, attack)
ACCURACY_KEYS = (
    ("student_clean", "student", "clean"), ("student_pgd", "student", "PGD"),
    ("robust_teacher_clean", "robust teacher", "clean"), ("robust_teacher_pgd", "robust teacher", "PGD"),
    ("clean_teacher_clean", "clean teacher", "clean"), ("clean_teacher_pgd", "clean teacher", "PGD"),
)
#: config keys that differ between any two runs and say nothing about them
IGNORED_CONFIG_KEYS = ("name", "out_dir", "progress")
#: settings that change neither the data nor what a run computes: where its files are, how often it
#: logs or checkpoints, its threads, how its kernels are laid out or compiled (``section.key``)
BOOKKEEPING_KEYS = tuple(f"run.{k}" for k in IGNORED_CONFIG_KEYS) + (
    "run.log", "run.log_every", "run.checkpoint_every", "run.threads", "run.device", "run.compile",
    "run.channels_last", "run.fold_bn", "run.eval_teachers", "run.test_size", "data.data_path", "data.download")


@dataclass
class Follower:
    """Everything read so far from one run's metrics.jsonl, and where reading stopped."""
    name: str
    offset: int = 0
    inode: int | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    version: int = 0                       # bumped whenever new records arrive
    _frames: tuple[int, pd.DataFrame, pd.DataFrame] | None = None

    def reset(self) -> None:
        self.offset, self.inode, self.final, self._frames = 0, None, {}, None
        self.steps, self.epochs = [], []
        self.version += 1

    def update(self, store: RunStore, name: str | None = None) -> bool:
        """Read what was appended since the last call; True when something new arrived.

        A resume rewrites metrics.jsonl (records after the checkpoint are dropped, then
        recomputed): the file's inode changes, and reading starts again from the top.
        """
        records, offset, inode, restarted = read_new_records(
            store.root / self.name / "metrics.jsonl", self.offset, self.inode)
        if restarted:
            self.reset()
        self.offset, self.inode = offset, inode
        if not records:
            return False
        for r in records:
            kind = r.get("kind")
            if kind == "step":
                self.steps.append(r)
            elif kind == "epoch":
                self.epochs.append(r)
            elif kind == "final":
                self.final = r
        self.version += 1
        return True

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(per-step, per-epoch) DataFrames, rebuilt only when new records arrived."""
        if self._frames is None or self._frames[0] != self.version:
            steps = _dedupe(pd.DataFrame(self.steps), "step")
            epochs = _dedupe(pd.DataFrame(self.epochs), "epoch")
            self._frames = (self.version, steps, epochs)
        return self._frames[1], self._frames[2]


def _dedupe(df: pd.DataFrame, key: str) -> pd.DataFrame:
    if df.empty or key not in df:
        return df
    return df.drop_duplicates(key, keep="last").sort_values(key).reset_index(drop=True)


# -- progress ------------------------------------------------------------------------------
def seconds_left(steps: pd.DataFrame, total_steps: int, window: int = 100) -> float | None:
    """Time to finish at the recent step rate (from the step timestamps), or None if unknown.

    Uses the last ``window`` steps, so a resumed run or a changed machine load is followed;
    epoch-end evaluations are not in it, so the estimate is a little optimistic.
    """
    if steps.empty or "time" not in steps or len(steps) < 2 or not total_steps:
        return None
    recent = steps.tail(window)
    d_step = recent["step"].iloc[-1] - recent["step"].iloc[0]
    d_time = recent["time"].iloc[-1] - recent["time"].iloc[0]
    if d_step <= 0 or d_time <= 0:
        return None
    return max(0.0, (total_steps - steps["step"].iloc[-1]) * d_time / d_step)


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def needs_teacher_training(info: RunInfo) -> bool:
    """Whether this run may first train quick teachers (a distillation method with ``auto``)."""
    model = info.config.get("model", {})
    roles = TEACHERS_NEEDED.get(info.method, ())
    return any(model.get(f"{role}_teacher") == "auto" for role in roles)


def teacher_runs_in_progress(store: RunStore) -> list[dict[str, Any]]:
    """Quick-teacher runs (``<root>/teachers/*``) whose trainer says it is running."""
    out = []
    tdir = store.root / "teachers"
    if not tdir.is_dir():
        return out
    for d in sorted(tdir.iterdir()):
        status = read_json(d / "status.json")
        if status.get("state") == "running":
            out.append({"name": d.name, "step": int(status.get("step", 0)),
                        "total_steps": int(status.get("total_steps", 0)),
                        "heartbeat": status.get("heartbeat")})
    return out


# -- run summaries (Runs page) ----------------------------------------------------------------
def epoch_and_final(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The per-epoch records and the final record of a run, without parsing its step lines.

    Step lines are most of the file and all start with ``{"kind":"step"``; they are skipped by
    prefix. Cached per file version (inode, size, mtime) in a bounded LRU cache, so an unchanged
    run costs nothing on the next look and a grown or rewritten one is read again.
    """
    f = path / "metrics.jsonl"
    try:
        st = f.stat()
    except OSError:
        return [], {}
    epochs, final = _epoch_and_final(str(f), st.st_ino, st.st_size, st.st_mtime_ns)
    return list(epochs), dict(final)


@functools.lru_cache(maxsize=256)
def _epoch_and_final(path: str, inode: int, size: int, mtime_ns: int) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    records, *_ = read_new_records(Path(path), skip_prefix=b'{"kind":"step"')
    epochs = tuple(r for r in records if r.get("kind") == "epoch")
    finals = [r for r in records if r.get("kind") == "final"]
    return epochs, (finals[-1] if finals else {})


def best_epoch(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch record with the best validation score (what best.pt holds)."""
    scored = [e for e in epochs if isinstance(e.get("score"), (int, float)) and e["score"] == e["score"]]
    return max(scored, key=lambda e: e["score"]) if scored else {}


def _pct(x: Any) -> float | None:
    return None if not isinstance(x, (int, float)) or x != x else round(100.0 * x, 2)


def hyperparameters(info: RunInfo) -> dict[str, Any]:
    """A run's hyperparameters by config name (where and how it is shown left out)."""
    from .forms import NOT_HYPERPARAMETERS, flat_config
    return {k: v for k, v in flat_config(info.config).items() if k not in NOT_HYPERPARAMETERS}


def varying_hyperparameters(infos: Iterable[RunInfo]) -> list[str]:
    """The hyperparameters (config names) whose values differ between the runs, in the form's order."""
    from .forms import in_form_order
    values = [hyperparameters(i) for i in infos]
    return [k for k in in_form_order({k for v in values for k in v})
            if len({json.dumps(v.get(k), default=str) for v in values}) > 1]


#: the Runs table's score columns ("best by" and sorting choose among them)
SCORE_COLUMNS = ("best val PGD %", "best val clean %", "test PGD-20 %", "test clean %")


def runs_table(infos: Iterable[RunInfo], hyper: str = "varying") -> pd.DataFrame:
    """One row per run: what the Runs page lists, then hyperparameter columns by the form's labels.

    ``hyper``: "varying" adds the hyperparameters that differ across these runs, "all" every
    one (the CSV), "none" none.
    """
    from .forms import label_of
    infos = list(infos)
    keys = {"varying": varying_hyperparameters(infos), "none": []}.get(hyper) \
        or (list(hyperparameters(infos[0])) if hyper == "all" and infos else [])
    rows = []
    for info in infos:
        epochs, final = epoch_and_final(info.path)
        best = best_epoch(epochs)
        epochs_total = info.config.get("optim", {}).get("epochs")
        rows.append({
            "name": info.name, "state": info.state, "method": info.method, "student": info.student,
            "epochs": f"{info.epoch}/{epochs_total}" if epochs_total else str(info.epoch),
            "steps": f"{info.step}/{info.total_steps}" if info.total_steps else str(info.step),
            "progress": round(100.0 * info.progress, 1),
            "best val clean %": _pct(best.get("student_clean")),
            "best val PGD %": _pct(best.get("student_pgd")),
            "test clean %": _pct(final.get("test_clean")),
            "test PGD-20 %": _pct(final.get("test_pgd20")),
            "created": pd.Timestamp(info.created, unit="s", tz="UTC").tz_convert(None).floor("s"),
            "group": info.group or "",
            **{label_of(k): _hp_cell(hyperparameters(info).get(k)) for k in keys},
        })
    columns = ["name", "state", "method", "student", "epochs", "steps", "progress",
               "best val clean %", "best val PGD %", "test clean %", "test PGD-20 %", "created", "group",
               *[label_of(k) for k in keys]]
    return pd.DataFrame(rows, columns=columns)


def _hp_cell(v: Any) -> Any:
    """Numbers stay numbers (the column sorts); anything else is text (one type per column)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "—" if v is None else str(v)
    return v


def best_run(table: pd.DataFrame, score: str) -> str | None:
    """The name of the run with the highest ``score`` in the Runs table (None if none has one)."""
    if score not in table or table[score].isna().all():
        return None
    return str(table.loc[table[score].astype(float).idxmax(), "name"])


def final_metrics_table(infos: Iterable[RunInfo]) -> pd.DataFrame:
    """Final and best-validation figures, one column per run (side by side)."""
    cols = {}
    for info in infos:
        epochs, final = epoch_and_final(info.path)
        best = best_epoch(epochs)
        cols[info.name] = {k: _cell(v) for k, v in {
            "state": info.state,
            "test clean %": _pct(final.get("test_clean")),
            "test PGD-20 %": _pct(final.get("test_pgd20")),
            "test images": final.get("test_n"),
            "best epoch": best.get("epoch"),
            "best val clean %": _pct(best.get("student_clean")),
            "best val PGD %": _pct(best.get("student_pgd")),
            "robust teacher val clean %": _pct(best.get("robust_teacher_clean")),
            "robust teacher val PGD %": _pct(best.get("robust_teacher_pgd")),
            "steps": f"{info.step}/{info.total_steps}" if info.total_steps else info.step,
        }.items()}
    return pd.DataFrame(cols)


def _cell(v: Any) -> str:
    """Mixed columns shown as text (one type per column for Arrow); missing as a dash."""
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def config_differences(infos: Iterable[RunInfo]) -> pd.DataFrame:
    """Config keys (flat ``section.key``) whose values differ between the runs; one column each."""
    infos = list(infos)
    flat = {i.name: _flat(i.config) for i in infos}
    keys = sorted({k for d in flat.values() for k in d})
    rows = {}
    for k in keys:
        if k.split(".", 1)[-1] in IGNORED_CONFIG_KEYS:
            continue
        values = [flat[n].get(k, "—") for n in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            rows[k] = [_show(v, k) for v in values]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(flat))


def _flat(config: dict) -> dict[str, Any]:
    return {f"{section}.{k}": v for section, values in config.items() if isinstance(values, dict)
            for k, v in values.items()}


def training_differences(a: dict, b: dict, also_ignored: Iterable[str] = ()) -> dict[str, tuple[str, str]]:
    """``section.key`` -> (a's value, b's value), as shown, for the settings two training configs
    both record and set differently; bookkeeping (:data:`BOOKKEEPING_KEYS`) and ``also_ignored``
    left out. A key only one of them records (a config written before it existed) is not a
    difference: nothing says what the other used."""
    fa, fb = _flat(a), _flat(b)
    skip = set(BOOKKEEPING_KEYS) | set(also_ignored)
    return {k: (_show(fa[k], k), _show(fb[k], k)) for k in sorted(fa.keys() & fb.keys())
            if k not in skip and json.dumps(fa[k], sort_keys=True, default=str)
            != json.dumps(fb[k], sort_keys=True, default=str)}


def is_push_ablation(push: "Iterable[float | None]") -> bool:
    """Two push weights (:func:`push_weight`) of which one is on and the other off."""
    a, b = tuple(push)
    return a is not None and b is not None and (a > 0) != (b > 0)


#: the settings that are perturbation sizes, shown in 1/255 units
PERTURBATION_KEYS = ("eps", "pgd_step_size")


def _show(v: Any, key: str = "") -> str:
    """A setting's value as shown; a perturbation size (:data:`PERTURBATION_KEYS`, or any
    value without a key) in 1/255 units when it is a whole number of them (8/255), not an lr or
    an eps warm-up fraction of 0.2 as 51/255."""
    if v is None:
        return "—"
    if isinstance(v, float):
        n = v * 255
        if (not key or key.rsplit(".", 1)[-1] in PERTURBATION_KEYS) and 0 < v < 1 and abs(n - round(n)) < 1e-9:
            return f"{round(n)}/255"
        return f"{v:.6g}"
    return str(v)


def metrics_csv(store: RunStore, names: Iterable[str]) -> bytes:
    """Every metric record of the runs, one row each, with ``run`` and ``kind`` columns and the
    run's hyperparameters as ``hp.<config name>`` columns."""
    frames = []
    for name in names:
        records, _ = store.read_metrics(name, 0)
        if records:
            df = pd.DataFrame(records)
            df.insert(0, "run", name)
            for k, v in hyperparameters(store.get(name)).items():   # each row says what it was trained with
                df[f"hp.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
            frames.append(df)
    if not frames:
        return b"run,kind\n"
    df = pd.concat(frames, ignore_index=True, sort=False)
    front = [c for c in ("run", "kind", "step", "epoch", "time") if c in df]
    df = df[front + [c for c in df.columns if c not in front]]
    return df.to_csv(index=False).encode()


def curve(store: RunStore, name: str, metric: str) -> pd.DataFrame:
    """``step``/``epoch`` and one metric of a run, from its step or epoch records."""
    records, _ = store.read_metrics(name, 0)
    rows = [r for r in records if metric in r and r.get("kind") in ("step", "epoch")
            and isinstance(r.get(metric), (int, float))]
    return pd.DataFrame([{"step": r.get("step"), "epoch": r.get("epoch"), metric: r[metric]}
                         for r in rows], columns=["step", "epoch", metric])


def metric_names(store: RunStore, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(per-epoch, per-step) numeric metric keys found in the runs, for a metric picker."""
    epoch_keys: set[str] = set()
    step_keys: set[str] = set()
    for name in names:
        for r in RunStore.tail_records(store.root / name, 400):
            target = epoch_keys if r.get("kind") == "epoch" else step_keys if r.get("kind") == "step" else None
            if target is not None:
                target.update(k for k, v in r.items() if isinstance(v, (int, float))
                              and k not in ("step", "epoch", "time"))
    return sorted(epoch_keys, key=_metric_order), sorted(step_keys, key=_metric_order)


def _metric_order(key: str) -> tuple[int, str]:
    order = [k for k, *_ in ACCURACY_KEYS] + ["score", "loss"]
    return (order.index(key), key) if key in order else (len(order), key)

