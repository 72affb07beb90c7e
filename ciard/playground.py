"""The Playground's runs: CIARD and its baselines on 2-D points, four models in seconds.

One run trains, in this order and each for ``steps`` steps of the same small loop,
  1. a clean teacher (method ``natural``),
  2. a robust teacher (``pgd_at`` at ``robust_strength * eps``; below 1, a weaker one),
  3. the chosen student (``method`` with the page's push weight, T_push, ITT and temperatures),
  4. its twin from the *same* initial weights, batch order and attack noise: for CIARD the same
     setting with the push loss off (``push_weight = 0``); for any other method, CIARD.
Every model is trained through :func:`ciard.trainer.train_step` with the method object
:func:`ciard.methods.build_method` returns, i.e. the same method classes, losses and PGD as
the CIFAR trainer; the only difference is ``bounds=None`` (points in the plane have no [0, 1]
image range to clamp to). There is no second implementation of any loss here.

Settings that differ from the CIFAR defaults because a toy run is ~150 steps, not ~100,000:
the ITT learning rate (0.01, not 1e-4) and the temperature step (0.01 per step, not 1e-3), so
that ITT and the temperatures move visibly within a run. Both are fields below.

Snapshots (``snapshots > 0``) record, at evenly spaced steps of each phase, every model's
decision regions on a grid, each training point's white-box PGD point against each model, and
for the students the push loss's mask (the training points where the clean teacher is fooled
by the student's own training attack). Accuracy is measured on the separate test points:
clean, and PGD-20 (step eps/4, uniform start, fixed seed) white-box against each model.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from .attacks import PGD
from .config import Config
from .evaluate import predict, robust_correct
from .methods import METHOD_CLASSES, build_method
from .models import build_model, check_buildable
from .schedules import student_lr
from .toy2d import Toy2D, ToyDataError, make_toy2d
from .toy2d import check as check_toy
from .trainer import train_step

#: the methods a student can be trained with (teacher roles come from ciard.config)
STUDENT_METHODS: tuple[str, ...] = ("ciard", "mtard", "rslad", "ard", "trades", "pgd_at", "fgsm_at", "natural")
#: the four panels, in display order
ROLES: tuple[str, ...] = ("clean", "robust", "student", "twin")
MAX_STEPS = 5000
EVAL_PGD_STEPS = 20


class PlaygroundError(ValueError):
    """A Playground setting is out of range; the message is one line naming it."""


@dataclass(frozen=True)
class PlaygroundSettings:
    dataset: str = "moons"
    classes: int = 2
    noise: float = 0.1
    eps: float = 0.2                  # L-inf radius in the plane's units (data span about +-1.5)
    method: str = "ciard"
    push_weight: float = 1.0
    push_temp: float = 5.0
    itt: bool = True
    adaptive_temp: bool = True
    steps: int = 150                  # per model
    seed: int = 0
    student: str = "mlp-32x2"
    teacher: str = "mlp-64x3"         # both teachers' architecture
    robust_strength: float = 1.0      # the robust teacher is adversarially trained at this * eps
    n_train: int = 300
    n_test: int = 300
    batch_size: int = 100
    lr: float = 0.1
    pgd_steps: int = 3                # training attack (all methods), step 2.5 eps / pgd_steps
    itt_lr: float = 0.01
    temp_lr: float = 0.01

    def twin_label(self) -> str:
        return "push off" if self.method == "ciard" else "CIARD"

    def role_labels(self) -> dict[str, str]:
        chosen = f"student: {self.method}" + (f" (push {self.push_weight:g})" if self.method == "ciard" else "")
        twin = "student: ciard, push off" if self.method == "ciard" else \
            f"student: ciard (push {self.push_weight:g})"
        return {"clean": "clean teacher", "robust": "robust teacher", "student": chosen, "twin": twin}


def check_settings(s: PlaygroundSettings) -> PlaygroundSettings:
    """PlaygroundError with one line for the first bad value; else ``s``."""
    try:
        check_toy(s.dataset, s.classes, s.noise, s.n_train, s.n_test)
    except ToyDataError as exc:
        raise PlaygroundError(str(exc)) from None
    for name in ("eps", "push_weight", "push_temp", "robust_strength", "lr", "itt_lr", "temp_lr"):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PlaygroundError(f"{name} = {v!r} is not a finite number")
    if not 0.0 < s.eps <= 1.0:
        raise PlaygroundError(f"eps = {s.eps:g} must be in (0, 1] (the data spans about -1.5 to 1.5)")
    if s.push_weight < 0 or s.itt_lr < 0 or s.temp_lr < 0:
        raise PlaygroundError("push_weight, itt_lr and temp_lr must not be negative")
    if s.push_temp <= 0 or s.lr <= 0:
        raise PlaygroundError("push_temp and lr must be positive")
    if not 0.0 < s.robust_strength <= 1.0:
        raise PlaygroundError(f"robust_strength = {s.robust_strength:g} must be in (0, 1]")
    if s.method not in STUDENT_METHODS:
        raise PlaygroundError(f"unknown method '{s.method}'; choose one of: {', '.join(STUDENT_METHODS)}")
    for name, lo, hi in (("steps", 1, MAX_STEPS), ("batch_size", 1, s.n_train), ("pgd_steps", 1, 50)):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise PlaygroundError(f"{name} = {v!r} must be an integer from {lo} to {hi}")
    if isinstance(s.seed, bool) or not isinstance(s.seed, int) or not 0 <= s.seed < 2 ** 31:
        raise PlaygroundError(f"seed = {s.seed!r} must be an integer from 0 to 2^31 - 1")
    for name in ("student", "teacher"):
        arch = getattr(s, name)
        problem = check_buildable(arch)
        if problem or not str(arch).lower().startswith("mlp"):
            raise PlaygroundError(f"{name} = {arch!r} must be an mlp-WxD model (e.g. mlp-32x2)")
    return s


def method_config(s: PlaygroundSettings, method: str, eps: float | None = None, **over: Any) -> Config:
    """The ciard Config of one model's training: the CIFAR config with the toy's values."""
    eps = s.eps if eps is None else eps
    values = dict(
        method=method, student=s.student, eps=eps, pgd_steps=s.pgd_steps,
        pgd_step_size=2.5 * eps / s.pgd_steps, batch_size=s.batch_size, lr=s.lr, epochs=1,
        push_weight=s.push_weight, push_temp=s.push_temp, itt=s.itt, itt_lr=s.itt_lr,
        adaptive_temp=s.adaptive_temp, temp_lr=s.temp_lr, fold_bn=False, channels_last=False,
        clean_teacher=None, robust_teacher=None, device="cpu", precision="fp32", seed=s.seed)
    return Config().override(**{**values, **over})


def twin_config(s: PlaygroundSettings) -> Config:
    return method_config(s, "ciard", push_weight=0.0) if s.method == "ciard" else method_config(s, "ciard")


# -- snapshots ----------------------------------------------------------------------------
@dataclass
class Snapshot:
    """One model at one moment: decision regions and the training points under attack."""

    region: np.ndarray               # uint8 G x G predicted class on the grid
    confidence: np.ndarray           # float16 G x G max softmax probability
    adv: np.ndarray                  # float32 N x 2: each training point's PGD point against this model
    fooled: np.ndarray               # bool N: this model is wrong at its own adversarial point
    mask: np.ndarray | None = None   # bool N (students): the clean teacher is fooled (push mask)


@dataclass
class PlaygroundResult:
    settings: PlaygroundSettings
    data: Toy2D
    grid_x: np.ndarray                # G
    grid_y: np.ndarray                # G
    frames: list[str]                 # snapshot labels, e.g. "teachers 40 %", "students 100 %"
    snapshots: dict[str, list[Snapshot]]   # role -> one per frame
    accuracy: dict[str, dict[str, float]]  # role -> {"clean", "pgd"} on the test points
    history: dict[str, list[dict[str, float]]]   # role -> per-step metrics (students)
    seconds: dict[str, float]

    def fooled_by(self, frame: int, index: int) -> list[str]:
        """The roles whose own white-box PGD point for training point ``index`` fools them."""
        return [r for r in ROLES if self.snapshots[r][frame].fooled[index]]


def _grid(data: Toy2D, size: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    x0, x1, y0, y1 = data.bounds()
    gx, gy = np.linspace(x0, x1, size, dtype=np.float32), np.linspace(y0, y1, size, dtype=np.float32)
    xx, yy = np.meshgrid(gx, gy)
    return gx, gy, torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1))


def eval_attack(eps: float, steps: int = EVAL_PGD_STEPS) -> PGD:
    """The evaluation PGD on points: ``steps`` x eps/4 from a uniform start, no [0, 1] clamp."""
    return PGD(eps=eps, steps=steps, step_size=eps / 4, start="uniform", bounds=None)


def _snapshot(model: nn.Module, grid: torch.Tensor, size: int, x: torch.Tensor, y: torch.Tensor,
              attack: PGD, method=None, clean: nn.Module | None = None) -> Snapshot:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4321)
        with torch.no_grad():
            was = model.training
            model.eval()
            probs = torch.softmax(model(grid).float(), 1)
            model.train(was)
        conf, region = probs.max(1)
        adv = attack(model, x, y)
        fooled = predict(model, adv) != y
        mask = None
        if method is not None and clean is not None:   # the push loss's own mask, from its attack
            x_train_adv = method.adversarial(x, y)
            mask = (predict(clean, x_train_adv) != y).numpy()
    return Snapshot(region.reshape(size, size).numpy().astype(np.uint8),
                    conf.reshape(size, size).numpy().astype(np.float16),
                    adv.numpy().astype(np.float32), fooled.numpy(), mask=mask)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> dict[str, float]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        clean = robust_correct(model, x, y, None).float().mean().item()
        pgd = robust_correct(model, x, y, eval_attack(eps)).float().mean().item()
    return {"clean": clean, "pgd": pgd}


# -- training -------------------------------------------------------------------------------
def train(method, data: Toy2D, cfg: Config, steps: int, *, seed: int,
          record: list[dict[str, float]] | None = None,
          snapshot_at: set[int] = frozenset(), on_snapshot: Callable[[int], None] | None = None) -> None:
    """``steps`` steps of ``ciard.trainer.train_step`` on random batches of the training points.

    The batch order and the attack's random starts come from ``seed`` alone, so two methods
    trained with the same seed see the same batches and noise. ``on_snapshot(k)`` runs before
    step k for k in ``snapshot_at`` (and after the last step for k = steps).
    """
    optim = torch.optim.SGD(method.student.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                            weight_decay=cfg.optim.weight_decay)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + 1)
    n, b = len(data.y_train), cfg.optim.batch_size
    order = torch.randperm(n, generator=g)
    pos = 0
    for step in range(steps):
        if on_snapshot is not None and step in snapshot_at:
            on_snapshot(step)
        if pos + b > n:
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos:pos + b]
        pos += b
        progress = step / steps
        lr = student_lr(cfg.optim.lr, progress, cfg.optim.lr_schedule)
        out, extra = train_step(method, optim, data.x_train[idx], data.y_train[idx], progress, lr,
                                channels_last=False)
        if record is not None:
            values = {k: float(v) for k, v in {**out.metrics, **extra}.items()}
            values.update(step=step + 1, loss=float(out.loss.detach()), lr=lr)
            record.append(values)
    if on_snapshot is not None and steps in snapshot_at:
        on_snapshot(steps)


def run_playground(s: PlaygroundSettings, *, snapshots: int = 10, grid: int = 60,
                   data: Toy2D | None = None, threads: int = 1) -> PlaygroundResult:
    """Train the four models of a Playground run; see the module docstring.

    ``threads``: torch's intra-op threads during the run (restored after). One is the fast
    choice for these tiny models: measured on a 2-core AMD EPYC with other work running, one
    forward and backward pass of an mlp-64x3 on 64 points took 1.1 ms with 1 thread and 38 ms
    with 2 (the threads wait on each other for a few microseconds of work each).
    """
    check_settings(s)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(s, snapshots, grid, data)
    finally:
        torch.set_num_threads(before)


def _run(s: PlaygroundSettings, snapshots: int, grid: int, data: Toy2D | None) -> PlaygroundResult:
    t_all = time.perf_counter()
    data = data or make_toy2d(s.dataset, s.classes, s.noise, n_train=s.n_train, n_test=s.n_test, seed=s.seed)
    k = data.num_classes
    gx, gy, grid_pts = _grid(data, grid)
    attack = eval_attack(s.eps, steps=10)
    marks = sorted({round(i * s.steps / snapshots) for i in range(snapshots + 1)}) if snapshots else []
    frames = [f"teachers {100 * m / s.steps:.0f} %" for m in marks] + \
             [f"students {100 * m / s.steps:.0f} %" for m in marks]
    snaps: dict[str, list[Snapshot]] = {r: [] for r in ROLES}
    seconds: dict[str, float] = {}

    torch.manual_seed(s.seed)
    clean = build_model(s.teacher, k)
    robust = build_model(s.teacher, k)
    student0 = build_model(s.student, k)

    def snap(role: str, model: nn.Module, method=None, clean_model=None):
        return lambda _step: snaps[role].append(
            _snapshot(model, grid_pts, grid, data.x_train, data.y_train, attack, method, clean_model))

    # -- phase 1: the teachers (the students stay at their shared initial weights) -------
    t0 = time.perf_counter()
    cfg_clean = method_config(s, "natural")
    train(build_method(cfg_clean, clean, {}, bounds=None), data, cfg_clean, s.steps, seed=s.seed,
          snapshot_at=set(marks), on_snapshot=snap("clean", clean) if marks else None)
    seconds["clean"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg_robust = method_config(s, "pgd_at", eps=s.eps * s.robust_strength)
    train(build_method(cfg_robust, robust, {}, bounds=None), data, cfg_robust, s.steps, seed=s.seed + 1,
          snapshot_at=set(marks), on_snapshot=snap("robust", robust) if marks else None)
    seconds["robust"] = time.perf_counter() - t0
    if marks:
        init = _snapshot(student0, grid_pts, grid, data.x_train, data.y_train, attack)
        snaps["student"] += [init] * len(marks)
        snaps["twin"] += [init] * len(marks)

    # -- phase 2: the two students, from the same weights, batches and attack noise ---------
    history: dict[str, list[dict[str, float]]] = {}
    students: dict[str, nn.Module] = {}
    robust_after: nn.Module = robust
    for role, cfg in (("student", method_config(s, s.method)), ("twin", twin_config(s))):
        t0 = time.perf_counter()
        student = copy.deepcopy(student0)
        r_copy = copy.deepcopy(robust)          # ITT changes its own copy of R
        teachers = {"clean": clean, "robust": r_copy}
        needed = METHOD_CLASSES[cfg.method.method].teachers
        method = build_method(cfg, student, {t: teachers[t] for t in needed}, bounds=None)
        history[role] = []
        on = None
        if marks:
            def on(step, role=role, student=student, method=method, r_copy=r_copy):
                snaps[role].append(_snapshot(student, grid_pts, grid, data.x_train, data.y_train, attack,
                                             method, clean))
                if role == "student":   # R as ITT leaves it along the chosen student; N is frozen
                    snaps["robust"].append(_snapshot(r_copy, grid_pts, grid, data.x_train, data.y_train, attack))
                    snaps["clean"].append(snaps["clean"][len(marks) - 1])
        train(method, data, cfg, s.steps, seed=s.seed + 2, record=history[role],
              snapshot_at=set(marks), on_snapshot=on)
        students[role] = student
        if role == "student":
            robust_after = r_copy
        seconds[role] = time.perf_counter() - t0
    seconds["train"] = sum(seconds[r] for r in ROLES)

    t0 = time.perf_counter()
    models = {"clean": clean, "robust": robust, "student": students["student"], "twin": students["twin"]}
    accuracy = {r: _accuracy(m, data.x_test, data.y_test, s.eps) for r, m in models.items()}
    if robust_after is not robust:
        accuracy["robust_itt"] = _accuracy(robust_after, data.x_test, data.y_test, s.eps)
    seconds["eval"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all
    return PlaygroundResult(s, data, gx, gy, frames, snaps, accuracy, history, seconds)


# -- repeats over seeds ------------------------------------------------------------------------
METRICS: tuple[tuple[str, str], ...] = (("student", "clean"), ("student", "pgd"), ("twin", "clean"),
                                        ("twin", "pgd"))


@dataclass
class SeedRepeat:
    settings: PlaygroundSettings
    seeds: list[int]
    accuracy: list[dict[str, dict[str, float]]]      # per seed: role -> {"clean", "pgd"}
    seconds: float

    def values(self, role: str, metric: str) -> list[float]:
        return [a[role][metric] for a in self.accuracy]

    def summary(self) -> dict[str, Any]:
        """Each role's mean and 95 % t-interval per metric, and student minus twin, paired by seed."""
        from .stats import mean_interval, paired_mean_difference
        out: dict[str, Any] = {"n": len(self.seeds), "roles": {}, "difference": {}}
        for role in ("clean", "robust", "student", "twin"):
            out["roles"][role] = {m: mean_interval(self.values(role, m)) for m in ("clean", "pgd")}
        for m in ("clean", "pgd"):
            out["difference"][m] = paired_mean_difference(self.values("student", m), self.values("twin", m))
        return out


def repeat_seeds(s: PlaygroundSettings, n: int = 10, first_seed: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> SeedRepeat:
    """The same settings over ``n`` consecutive seeds (new data, inits, batches per seed)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 100:
        raise PlaygroundError(f"seeds = {n!r} must be an integer from 2 to 100")
    check_settings(s)
    start = s.seed if first_seed is None else first_seed
    seeds = list(range(start, start + n))
    t0 = time.perf_counter()
    acc = []
    for i, seed in enumerate(seeds):
        acc.append(run_playground(replace(s, seed=seed), snapshots=0).accuracy)
        if progress is not None:
            progress(i + 1, n)
    return SeedRepeat(s, seeds, acc, time.perf_counter() - t0)


# -- the benchmark -----------------------------------------------------------------------------
def bench_playground(s: PlaygroundSettings | None = None, rounds: int = 3) -> dict[str, Any]:
    """Seconds of a default Playground run (four models), training only and as the page runs it."""
    import os
    s = s or PlaygroundSettings()
    run_playground(replace(s, steps=10), snapshots=1)   # untimed: first-call costs (lazy inits)
    load_before = os.getloadavg()[0]
    train_only, with_snaps = [], []
    cpu = []
    for _ in range(rounds):
        c0 = time.process_time()
        r = run_playground(s, snapshots=0)
        cpu.append(time.process_time() - c0)
        train_only.append(r.seconds)
        r = run_playground(s, snapshots=10)
        with_snaps.append(r.seconds)
    best = min(train_only, key=lambda x: x["train"])
    page = min(with_snaps, key=lambda x: x["total"])
    return {"settings": asdict(s), "threads": 1, "cpus": os.cpu_count(), "rounds": rounds,
            "load_average": [load_before, os.getloadavg()[0]],
            "train_seconds": best["train"], "per_model": {r: best[r] for r in ROLES},
            "eval_seconds": best["eval"], "run_seconds": best["total"],
            "page_run_seconds": page["total"],
            # CPU time of this process (one thread): what the run costs without waiting for a core
            "run_cpu_seconds": min(cpu),
            "all_train_seconds": [x["train"] for x in train_only],
            "all_page_seconds": [x["total"] for x in with_snaps], "budget_seconds": 5.0}


def format_bench_playground(b: dict[str, Any]) -> str:
    s = b["settings"]
    per = ", ".join(f"{r} {b['per_model'][r]:.2f}" for r in ROLES)
    ok = "within" if b["run_seconds"] <= b["budget_seconds"] else "OVER"
    return "\n".join([
        f"Playground run: {s['dataset']}, {s['classes']} classes, {s['steps']} steps per model, "
        f"student {s['student']}, teachers {s['teacher']}, PGD-{s['pgd_steps']} training attack, "
        f"{b['threads']} torch thread, fp32 on {b['cpus']} CPUs, best of {b['rounds']} rounds; 1-minute load "
        f"average {b['load_average'][0]:.1f} before, {b['load_average'][1]:.1f} after (other work on the machine)",
        f"  training, four models: {b['train_seconds']:.2f} s ({per})",
        f"  + test accuracy (clean, PGD-20, four models): {b['eval_seconds']:.2f} s",
        f"  = run: {b['run_seconds']:.2f} s, {ok} the {b['budget_seconds']:.0f} s budget",
        f"  CPU time of the run (one thread; wall time on an otherwise idle core): {b['run_cpu_seconds']:.2f} s",
        f"  as the page runs it (with 11+11 snapshots of regions and attacks): {b['page_run_seconds']:.2f} s",
        f"  every round: train {', '.join(f'{x:.2f}' for x in b['all_train_seconds'])}; "
        f"page {', '.join(f'{x:.2f}' for x in b['all_page_seconds'])}",
    ])
