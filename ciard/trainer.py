"""The training loop. It knows schedules, precision, checkpoints and evaluation; no method.

Read :meth:`Trainer._fit` top to bottom: set-up (:meth:`Trainer._setup`: data, models, method,
optimiser), optional resume, then epochs of steps (:meth:`Trainer._train_epoch`), each step
followed by a look at the stop request and a periodic checkpoint; after each epoch a small
validation evaluation picks the best student (:meth:`Trainer._end_epoch`); at the end a
test-set check. What changes as the run goes lives in one :class:`LoopState`.

Teachers come from outside: the caller passes them (models, or a function that resolves them
once the data is loaded, such as :func:`ciard.teachers.resolve_teachers`), so the loop never
reads a teacher spec and tests can hand it models held in memory.

Determinism: the batch order of an epoch comes from (seed, epoch) alone, augmentation draws
from its own generator, and attacks' random starts from the global RNG; all three states are
in every checkpoint, so resuming (on the CPU) repeats an uninterrupted run exactly.
"""
from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import torch
import torch.nn as nn

from . import checkpoints, distributed, specs
from .attacks import PGD, eps_text
from .config import Config, ConfigError, validate
from .data import BatchIterator, DatasetSplits, ImageData, fixed_subset, load_dataset, to_float
from .errors import TrainingDiverged
from .evaluate import predict, robust_correct
from .fold import fold
from .methods import METHOD_CLASSES, Method, build_method
from .models import build_model
from .runclock import RunClock
from .runlog import RunDir, collapse_note
from .runtime import (autocast_factory, compile_supported, prepare_model, resolve_device,
                      resolve_precision)
from .schedules import student_lr
from .tracking import Trackers

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: str
    status: str                      # finished | stopped
    epoch: int
    step: int
    best: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)


class QuietRunDir(RunDir):
    """A run directory that is read, never written: what ranks other than 0 get."""

    def append(self, record: dict[str, Any]) -> None: pass
    def truncate_metrics(self, step: int, epoch: int) -> None: pass
    def set_status(self, **fields: Any) -> None: pass
    def write_config(self, config_json: str) -> None: pass
    def close(self) -> None: pass
    def read_heartbeat(self) -> float: return time.time()
    def lock(self, wait: bool = False) -> None: pass
    def remove_stale_temps(self) -> list[str]: return []


class _StopFlag:
    """SIGINT / SIGTERM ask for a stop between steps instead of killing mid-write."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. inside a test runner thread)
            pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        self.raised = True
        log.warning("stop requested (signal %d): finishing the step and writing a checkpoint", signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


#: the teachers a Trainer is given: models by role, or a function (cfg, data, device) -> them,
#: called once the data is loaded (``ciard.teachers.resolve_teachers`` resolves cfg's specs)
Teachers = Union[Mapping[str, nn.Module],
                 Callable[[Config, DatasetSplits, torch.device], Mapping[str, nn.Module]]]


def _init_student(student: nn.Module, spec: str, device: torch.device) -> None:
    """Copy a checkpoint's weights into the fresh student (``--student-init``)."""
    path = specs.resolve(spec, "student_init")
    init = checkpoints.load_model(path, device)
    if (init.arch, init.num_classes) != (student.arch, student.num_classes):
        raise checkpoints.CheckpointError(
            f"student_init {spec} is a {init.arch} with {init.num_classes} classes; the student is a "
            f"{student.arch} with {student.num_classes}")
    student.load_state_dict(init.state_dict())
    log.info("student starts from %s (%s)", spec, path)


#: images per batch of the trainer's validation and final test checks
EVAL_CHUNK = 250

#: spacing of the per-rank random streams under torchrun
_RANK_SEED = 1_000_003

#: attack passes (steps x PGD steps) from which compiling the attack repays its ~20 s
COMPILE_WORTH = 20_000


def use_compile(mode: str, attack_passes: int) -> bool:
    return mode == "on" or (mode == "auto" and attack_passes >= COMPILE_WORTH)


def train_step(method, optim: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               progress: float, lr: float, channels_last: bool = True):
    """One training step of any method: its loss, the student's SGD step, its post-step work.

    The benchmark times exactly this function, so what it measures is what training runs.
    """
    for g in optim.param_groups:
        g["lr"] = lr
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = method.compute(x, y, progress)
    optim.zero_grad(set_to_none=True)
    out.loss.backward()
    method.dist.average_gradients(method.student.parameters())   # no-op in one process
    optim.step()
    extra = method.after_step(out, y, progress)
    method.dist.sync_buffers(method.student)
    return out, extra


@dataclass
class Setup:
    """What set-up builds; fixed for the whole run."""
    device: torch.device
    precision: str
    data: DatasetSplits
    batches: BatchIterator
    aug_gen: torch.Generator
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    student: nn.Module
    teachers: dict[str, nn.Module]
    method: Method
    optim: torch.optim.Optimizer
    steps_per_epoch: int
    total_steps: int
    compile_attack: bool
    log_every: int


@dataclass
class LoopState:
    """What changes as the run goes: counters, the best student so far, unwritten step records."""
    epoch: int = 0                   # epochs completed
    batch: int = 0                   # batches completed in the current epoch
    step: int = 0                    # steps completed in the run
    best_score: float = float("-inf")
    best: dict[str, Any] = field(default_factory=dict)
    status: str = "finished"         # finished | stopped
    seen: int = 0                    # images this process trained on since it started
    #: this process's running seconds since its first step (a stop, e.g. Ctrl-Z, is left out)
    clock: RunClock | None = None
    #: step records not yet written: (step, fractional epoch, wall time, metrics on the device)
    pending: list[tuple[int, float, float, dict[str, Any]]] = field(default_factory=list)
    #: validation accuracies of frozen teachers (they do not change, so they are checked once)
    teacher_eval: dict[str, dict[str, float]] = field(default_factory=dict)


class Trainer:
    def __init__(self, cfg: Config, run_dir: RunDir | None = None, data: DatasetSplits | None = None,
                 teachers: Teachers | None = None) -> None:
        """``teachers``: the method's teachers by role, or a function that returns them (see
        :data:`Teachers`); methods without teachers need none."""
        self.cfg = validate(cfg)
        self.dist = ddp = distributed.current()
        if run_dir is None:   # under torchrun rank 0 names the directory; the others use it
            made = RunDir.new(cfg.run.out_dir, cfg.run.name) if ddp.is_main else None
            path = ddp.broadcast_str(str(made.path) if made is not None else None)
            run_dir = made if made is not None else RunDir(path)
        # only rank 0 writes metrics, status and checkpoints
        self.run = run_dir if ddp.is_main else QuietRunDir(run_dir.path)
        self._data = data
        self._teachers = teachers
        self._trackers: Trackers | None = None
        self._progress: Callable[[int | None, dict[str, Any] | None], None] | None = None
        self._started = False   # config and "running" status written: the run is on the record

    # ------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        # One trainer per directory: the lock is held until this returns (RunBusy if taken).
        self.run.lock()
        try:
            removed = self.run.remove_stale_temps()
            if removed:
                log.info("removed %d temporary file(s) a killed process left: %s", len(removed),
                         ", ".join(removed))
            # The signal handlers stay installed until the run's status is written: under torchrun
            # a dead peer makes this rank's collective fail *and* the agent send SIGTERM a moment
            # later; with default handlers back that SIGTERM would kill the process mid-way and
            # leave the run "running" for ever.
            with _StopFlag() as stop:
                try:
                    return self._fit(resume, stop)
                except KeyboardInterrupt:   # a second stop signal: "now", before the next checkpoint
                    self._ended("stopped", "interrupted by a second stop signal; resume continues "
                                           "from the last checkpoint")
                    raise
                except Exception as exc:   # the run says why it ended (e.g. a data-parallel peer died)
                    if not self._started and self.run.created and self.dist.is_main:
                        # refused before it began (bad data, batch size, teacher): leave no
                        # directory holding only a status file behind
                        shutil.rmtree(self.run.path, ignore_errors=True)
                        raise
                    ours = isinstance(exc, (TrainingDiverged, ConfigError))
                    self._ended("failed", str(exc) if ours else f"{type(exc).__name__}: {exc}")
                    raise
        finally:
            self.run.unlock()

    def _ended(self, state: str, error: str) -> None:
        self.run.set_status(state=state, error=error, finished=time.time())
        if self._trackers is not None:
            self._trackers.close(state)

    def _fit(self, resume: bool, stop: "_StopFlag") -> TrainResult:
        cfg, run, ddp = self.cfg, self.run, self.dist
        # -- set-up, then the state to start from: fresh, or the last checkpoint's ----------
        p = self._setup(resume)
        s = self._resume(p) if resume else LoopState()
        if ddp.enabled:
            # per-rank streams for attack starts and augmentation (the checkpoint holds rank
            # 0's; a data-parallel resume continues from fresh per-rank streams, not bit-exact)
            torch.manual_seed(cfg.run.seed + _RANK_SEED * ddp.rank + 7 * s.step)
            p.aug_gen.manual_seed(cfg.run.seed + 1 + _RANK_SEED * ddp.rank + 7 * s.step)
        self._announce(p, s)
        # every record goes to the run store and to the trackers asked for (--log)
        self._trackers = Trackers((cfg.run.log or "") if ddp.is_main else "", run.path, cfg.to_dict())
        self._progress = _progress(p.total_steps, s.step, cfg.run.progress)

        # -- epochs: steps, then the end-of-epoch check and checkpoint ---------------------
        s.clock = RunClock()
        try:
            while s.epoch < cfg.optim.epochs:
                self._train_epoch(p, s, stop)
                if s.status == "stopped":
                    break
                self._end_epoch(p, s)
        finally:
            s.clock.close()   # its watching thread; elapsed() keeps the running time reached here
        self._progress(None, None)

        # -- the end: the best student on the test split ---------------------------------------
        final: dict[str, Any] = {}
        if s.status == "finished" and ddp.is_main:
            final = self._final_test(run, p.data, p.device, p.teachers, p.method)
            self._emit({"kind": "final", "step": s.step, "time": time.time(), **final})
        run.set_status(state=s.status, step=s.step, epoch=s.epoch, finished=time.time())
        run.close()
        self._trackers.close(s.status)
        return TrainResult(str(run.path), s.status, s.epoch, s.step, s.best, final)

    # -- set-up --------------------------------------------------------------------------
    def _setup(self, resume: bool) -> Setup:
        """Device and precision, data and batches, student, teachers, method and optimiser."""
        cfg, ddp, r = self.cfg, self.dist, self.cfg.run
        if r.threads:
            torch.set_num_threads(r.threads)
        device = distributed.device_for(ddp, resolve_device(r.device))
        precision = resolve_precision(r.precision, device)
        autocast = autocast_factory(precision, device)
        torch.manual_seed(r.seed)

        # data: batches in a (seed, epoch) order, augmentation from its own generator
        data = self._data or load_dataset(cfg.data.dataset, cfg.data.data_path,
                                          val_size=r.eval_size,
                                          train_subset=cfg.data.train_subset, seed=r.seed,
                                          download=cfg.data.download)
        if cfg.optim.batch_size > len(data.train):
            raise ConfigError(f"batch_size = {cfg.optim.batch_size} is larger than the "
                              f"{len(data.train)} training images")
        batches = BatchIterator(data.train, cfg.optim.batch_size, shuffle=True,
                                augment=cfg.data.augment, drop_last=True, seed=r.seed, device=device,
                                rank=ddp.rank, world=ddp.world)
        aug_gen = torch.Generator(device=device).manual_seed(r.seed + 1 + _RANK_SEED * ddp.rank)
        eval_x, eval_y = self._eval_split(data, device)

        # models and method
        student = prepare_model(build_model(cfg.model.student, data.num_classes), device, r.channels_last)
        if cfg.model.student_init and not resume:
            _init_student(student, cfg.model.student_init, device)
        teachers = {role: prepare_model(m, device, r.channels_last)
                    for role, m in self._given_teachers(data, device).items()}
        steps_per_epoch = len(batches)
        total_steps = steps_per_epoch * cfg.optim.epochs
        attacks = METHOD_CLASSES[cfg.method.method].uses_attack
        compile_attack = attacks and use_compile(r.compile, total_steps * cfg.attack.pgd_steps)
        if compile_attack and not compile_supported(device):
            compile_attack = False
            log.info("the attack is not compiled on %s", device)
        method = build_method(cfg, student, teachers, autocast, compile_attack=compile_attack)
        optim = torch.optim.SGD(student.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                nesterov=cfg.optim.nesterov and cfg.optim.momentum > 0,
                                weight_decay=cfg.optim.weight_decay)
        for model in [student, *teachers.values()]:
            ddp.broadcast_module(model)
        log_every = r.log_every or (20 if device.type == "cuda" else 1)
        return Setup(device, precision, data, batches, aug_gen, eval_x, eval_y, student, teachers,
                     method, optim, steps_per_epoch, total_steps, compile_attack, log_every)

    def _eval_split(self, data: DatasetSplits, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed images of the end-of-epoch checks: validation, else test (with a warning)."""
        r = self.cfg.run
        eval_split: ImageData = data.val if len(data.val) else data.test
        if not len(data.val):
            log.warning("no validation split (eval_size=0): epoch checks use the test set, "
                        "and the last epoch's student is kept")
        ev = fixed_subset(eval_split, min(r.eval_size, len(eval_split)), seed=r.seed)
        return to_float(ev.x).to(device), ev.y.to(device)

    def _given_teachers(self, data: DatasetSplits, device: torch.device) -> dict[str, nn.Module]:
        """The teachers the caller gave (resolved now if it gave a function), checked for the method."""
        given = self._teachers
        if given is not None and not isinstance(given, Mapping):
            given = given(self.cfg, data, device)
        teachers = dict(given or {})
        method = self.cfg.method.method
        for role in METHOD_CLASSES[method].teachers:
            if role not in teachers:
                raise ConfigError(f"method '{method}' needs a {role} teacher, and the trainer was given "
                                  "none (ciard.teachers.trainer resolves the config's teachers)")
        return teachers

    def _resume(self, p: Setup) -> LoopState:
        """The state of the last checkpoint, loaded into the models, optimiser and RNGs (resume)."""
        run = self.run
        s = LoopState()
        if run.last.is_file():
            ck = checkpoints.load(run.last, map_location=p.device)
            p.student.load_state_dict(ck["state_dict"])
            p.optim.load_state_dict(ck["optim"])
            p.method.load_state_dict(ck["method_state"])
            torch.set_rng_state(ck["rng"]["torch"])
            p.aug_gen.set_state(ck["rng"]["augment"])
            if p.device.type == "cuda" and ck["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ck["rng"]["cuda"], p.device)
            s.epoch, s.batch, s.step = ck["epoch"], ck["batch"], ck["step"]
            s.best_score, s.best = ck.get("best_score", float("-inf")), ck.get("best", {})
            run.truncate_metrics(s.step, s.epoch)
            log.info("resumed %s at epoch %d, batch %d (step %d)", run.path, s.epoch, s.batch, s.step)
        else:
            log.warning("no checkpoint in %s: starting from scratch", run.path)
            run.truncate_metrics(0, 0)   # what the killed process logged is redone from step 1
        return s

    def _announce(self, p: Setup, s: LoopState) -> None:
        """Put the run on the record: its config, a "running" status and one log line."""
        cfg, run, ddp = self.cfg, self.run, self.dist
        self._started = True
        # the method's own view of the config: one that fixes some settings (B-MTARD: no push,
        # no ITT, adaptive weights) records them as they are used, not as asked
        run.write_config(p.method.cfg.to_json())
        run.set_status(state="running", step=s.step, total_steps=p.total_steps, epoch=s.epoch,
                       epochs=cfg.optim.epochs, precision=p.precision, device=str(p.device),
                       method=cfg.method.method, started=time.time(), processes=ddp.world)
        log.info("run %s: %s, student %s, %d steps (%d epochs x %d), %s on %s%s%s",
                 run.path, cfg.method.method, cfg.model.student, p.total_steps, cfg.optim.epochs,
                 p.steps_per_epoch, p.precision, p.device, ", compiled attack" if p.compile_attack else "",
                 f", {ddp.world} processes ({ddp.backend})" if ddp.enabled else "")

    # -- one epoch of steps -------------------------------------------------------------------
    def _train_epoch(self, p: Setup, s: LoopState, stop: "_StopFlag") -> None:
        """The steps of epoch ``s.epoch`` from batch ``s.batch``; ``s.status`` "stopped" on a stop."""
        cfg, run, ddp, r = self.cfg, self.run, self.dist, self.cfg.run
        method = p.method
        for x, y in p.batches.epoch_batches(s.epoch, s.batch, generator=p.aug_gen):
            # one step: lr from the schedule, the method's loss, SGD, its post-step work
            progress = s.step / p.total_steps
            lr = student_lr(cfg.optim.lr, progress, cfg.optim.lr_schedule)
            if cfg.attack.eps_warmup > 0:
                method.set_attack_scale(min(1.0, progress / cfg.attack.eps_warmup))
            out, extra = train_step(method, p.optim, x, y, progress, lr, r.channels_last)
            s.step += 1
            s.batch += 1
            s.seen += len(y)

            # metrics stay on the device until a flush: one host sync per log_every steps
            metrics = {**out.metrics, **extra, "loss": out.loss.detach(), "lr": lr}
            if cfg.attack.eps_warmup > 0 and method.attack is not None:
                metrics["train_eps"] = method.attack.eps
            if out.logits is not None:
                metrics["train_acc"] = (out.logits.detach().argmax(1) == y).float().mean()
            s.pending.append((s.step, s.epoch + s.batch / p.steps_per_epoch, time.time(), metrics))
            if s.step % p.log_every == 0 or s.batch == p.steps_per_epoch:
                self._flush(p, s)

            if ddp.any(stop.raised or (ddp.is_main and run.stop_requested()), p.device):
                self._flush(p, s)
                self._save_last(p, s, s.epoch, s.batch)
                s.status = "stopped"
                return
            if r.checkpoint_every and s.step % r.checkpoint_every == 0:
                self._flush(p, s)
                self._save_last(p, s, s.epoch, s.batch)
                run.set_status(step=s.step, epoch=s.epoch)

    def _end_epoch(self, p: Setup, s: LoopState) -> None:
        """Validation check, best student, checkpoint (rank 0 alone; the others wait at their
        next collective); then the counters move to the next epoch."""
        cfg, run, ddp = self.cfg, self.run, self.dist
        score = float("-inf")
        if ddp.enabled:   # the ranks must hold the same student, teacher and scalars
            state = p.method.state_dict()
            scalars = [v for v in state.values() if torch.is_tensor(v) and v.dim() == 0]
            divergence = ddp.divergence([p.student, *p.teachers.values()], scalars, p.device)
            if divergence > 1e-3:
                log.warning("ranks disagree after epoch %d (largest state difference %.3g)",
                            s.epoch + 1, divergence)
        if ddp.is_main:
            record = self._epoch_eval(p.student, p.teachers, p.method, p.eval_x, p.eval_y, s.teacher_eval)
            # mean of validation clean and PGD accuracy (clean alone when PGD is off)
            pgd = record["student_pgd"]
            score = record["student_clean"] if pgd != pgd else (record["student_clean"] + pgd) / 2
            record.update(kind="epoch", epoch=s.epoch + 1, step=s.step, score=score, time=time.time())
            if ddp.enabled:
                record.update(processes=ddp.world, rank_divergence=divergence)
            self._emit(record)
            log.info("epoch %d/%d: student clean %.1f%% PGD %.1f%% (validation, %d images)",
                     s.epoch + 1, cfg.optim.epochs, 100 * record["student_clean"],
                     100 * record["student_pgd"], len(p.eval_y))
            note = collapse_note(record)
            if note:
                log.warning("%s", note)
        if ddp.is_main and (score > s.best_score or not len(p.data.val)):
            s.best_score = score
            s.best = {"epoch": s.epoch + 1, "score": score, **{k: v for k, v in record.items()
                                                               if k.startswith("student_")}}
            checkpoints.save_model(p.student, run.best, metrics=s.best, config=cfg.to_dict())
        s.epoch, s.batch = s.epoch + 1, 0
        self._save_last(p, s, s.epoch, 0)
        run.set_status(step=s.step, epoch=s.epoch)

    # -- writing: checkpoints and records ----------------------------------------------------------
    def _save_last(self, p: Setup, s: LoopState, next_epoch: int, next_batch: int) -> None:
        """last.pt: everything a resume needs to continue at (next_epoch, next_batch) exactly."""
        if not self.dist.is_main:
            return
        device = p.device
        rng = {"torch": torch.get_rng_state(), "augment": p.aug_gen.get_state(),
               "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        extra = {}
        if "robust" in p.teachers:
            extra["robust_meta"] = checkpoints.model_meta(p.teachers["robust"])
        checkpoints.save({
            "kind": "train", "model": checkpoints.model_meta(p.student),
            "state_dict": p.student.state_dict(), "optim": p.optim.state_dict(),
            "method_state": p.method.state_dict(), "rng": rng, "config": self.cfg.to_dict(),
            "epoch": next_epoch, "batch": next_batch, "step": s.step,
            "best_score": s.best_score, "best": s.best, **extra,
        }, self.run.last)

    def _emit(self, record: dict[str, Any]) -> None:
        self.run.append(record)
        self._trackers.log(record)

    def _flush(self, p: Setup, s: LoopState) -> None:
        """Write the pending step records; one device-to-host copy for all of them."""
        if not s.pending:
            return
        ddp, pending = self.dist, s.pending
        keys = sorted({k for *_, m in pending for k in m})
        nan = float("nan")
        rows = torch.stack([torch.stack([torch.as_tensor(m.get(k, nan), dtype=torch.float32,
                                                         device=p.device).reshape(())
                                         for k in keys]) for *_, m in pending])
        rows = ddp.mean_(rows).tolist()   # data-parallel: the mean over ranks (= global batch)
        _check_finite_losses(keys, pending, rows)
        elapsed = s.clock.elapsed() if s.clock is not None else 0.0
        for (st, ep, wall, m), row in zip(pending, rows):
            values = {k: v for k, v in zip(keys, row) if k in m}
            ips = s.seen * ddp.world / max(elapsed, 1e-9)
            self._emit({"kind": "step", "step": st, "epoch": ep, "time": wall, **values,
                        "img_per_s": ips})
            self._progress(st, {**values, "img_per_s": ips})
        pending.clear()
        if time.time() - self.run.read_heartbeat() > 1.0:   # a heartbeat for watchers
            self.run.set_status(step=s.step, epoch=s.epoch)

    # ------------------------------------------------------------------------------
    def _pgd(self, steps: int) -> PGD:
        a = self.cfg.attack
        return PGD(eps=a.eps, steps=steps, step_size=min(2 / 255, a.eps) if steps > 1 else a.eps,
                   start="uniform")

    def _accuracies(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
        """Clean and PGD accuracy in fp32 with a fixed random start (comparable across epochs).

        In chunks of ``EVAL_CHUNK`` images, on a channels-last folded view: on a 2-core CPU a
        1,000-image PGD-20 check took 36 s as one NCHW batch and 22 s this way."""
        cl = self.cfg.run.channels_last
        view = fold(model, channels_last=cl) if self.cfg.run.fold_bn else model
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        attack = self._pgd(steps) if steps else None
        with torch.random.fork_rng(devices=[x.device.index or 0] if x.device.type == "cuda" else []):
            torch.manual_seed(1234)
            chunks = [(x[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK]) for i in range(0, len(y), EVAL_CHUNK)]
            clean = torch.cat([robust_correct(view, xb, yb, None) for xb, yb in chunks]).float().mean().item()
            pgd = (torch.cat([robust_correct(view, xb, yb, attack) for xb, yb in chunks]).float().mean().item()
                   if attack else float("nan"))
        return clean, pgd

    def _epoch_eval(self, student, teachers, method, x, y, cache) -> dict[str, float]:
        r = self.cfg.run
        record: dict[str, float] = {}
        c, p = self._accuracies(student, x, y, r.eval_pgd_steps)
        # the share of the most frequent predicted class: near 1, a student collapsed to one class
        predicted = predict(student, x)
        share = torch.bincount(predicted).max().item() / len(predicted) if len(predicted) else 0.0
        record.update(student_clean=c, student_pgd=p, student_top_class_share=share)
        if r.eval_teachers:
            for role, model in teachers.items():
                changes = role == "robust" and method.trains_teacher
                if role not in cache or changes:
                    cache[role] = dict(zip(("clean", "pgd"), self._accuracies(model, x, y, r.eval_pgd_steps)))
                record[f"{role}_teacher_clean"] = cache[role]["clean"]
                record[f"{role}_teacher_pgd"] = cache[role]["pgd"]
        return record

    def _final_test(self, run: RunDir, data: DatasetSplits, device, teachers, method) -> dict[str, Any]:
        """The best student (and final robust teacher if it trained) on the test split, PGD-20."""
        n = min(self.cfg.run.test_size, len(data.test))
        final: dict[str, Any] = {"best_checkpoint": str(run.best)}
        if method.trains_teacher:
            path = run.path / "robust_teacher.pt"
            checkpoints.save_model(teachers["robust"], path, config=self.cfg.to_dict())
            final["robust_teacher_checkpoint"] = str(path)
        if n == 0:
            return final
        ts = fixed_subset(data.test, n, seed=0)
        x, y = to_float(ts.x).to(device), ts.y.to(device)
        best_student = checkpoints.load_model(run.best, device)
        clean, pgd = self._accuracies(best_student, x, y, 20)
        final.update(test_n=n, test_clean=clean, test_pgd20=pgd,
                     test_attack=f"PGD-20, eps {eps_text(self.cfg.attack.eps)}, step 2/255, uniform start, fp32")
        log.info("test (%d images): clean %.2f%%, PGD-20 %.2f%%", n, 100 * clean, 100 * pgd)
        return final


def _check_finite_losses(keys: list[str], pending: list, rows: list[list[float]]) -> None:
    """TrainingDiverged at the first step whose loss (a term before the total) is nan or inf.

    Called on every flush, before the records are written and before any checkpoint after
    them, so no nan weights reach last.pt or best.pt.
    """
    terms = sorted(k for k in keys if k.startswith("loss_")) + (["loss"] if "loss" in keys else [])
    where = {k: i for i, k in enumerate(keys)}
    for (st, _, _, m), row in zip(pending, rows):
        for k in terms:
            if k not in m:   # a term this step did not have (its cell is a nan placeholder)
                continue
            value = row[where[k]]
            if not math.isfinite(value):
                raise TrainingDiverged(f"training diverged at step {st}: {k} is {value}; the run stops "
                                       f"(try a smaller learning rate or loss weight)")


def _progress(total: int, start: int, enabled: bool):
    """A tqdm bar on a terminal; a log line every ~5% elsewhere (e.g. under the app)."""
    if enabled and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:   # torch alone installed (e.g. a bare GPU machine): log lines instead
            return _progress(total, start, False)
        bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

        def update(step, metrics):
            if step is None:
                bar.close()
                return
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", acc=f"{metrics.get('train_acc', 0):.2f}",
                            ips=f"{metrics['img_per_s']:.0f}")
        return update
    every = max(1, total // 20)

    def log_line(step, metrics):
        if step is not None and (step % every == 0 or step == total):
            log.info("step %d/%d loss %.4f %.0f img/s", step, total, metrics["loss"], metrics["img_per_s"])
    return log_line
