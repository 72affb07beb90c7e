"""The training loop. It knows schedules, precision, checkpoints and evaluation; no method.

Read top to bottom: set-up (data, models, method, optimiser), optional resume, then epochs
of steps, each followed by a look at the stop request and a periodic checkpoint; after each
epoch a small validation evaluation picks the best student; at the end a test-set check.

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
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from . import checkpoints, distributed
from .attacks import PGD
from .config import TEACHERS_NEEDED, Config, ConfigError, validate
from .data import BatchIterator, DatasetSplits, fixed_subset, load_dataset, to_float
from .evaluate import robust_correct
from .fold import fold
from .methods import build_method
from .models import build_model
from .runlog import RunDir
from .runtime import (autocast_factory, compile_supported, prepare_model, resolve_device,
                      resolve_precision)
from .schedules import student_lr
from .tracking import Trackers

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss term became nan or inf: the run stops (state ``failed``) without saving that state."""


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


def load_teachers(cfg: Config, data: DatasetSplits, device: torch.device) -> dict[str, nn.Module]:
    """Resolve the config's teacher specs (checkpoint, zoo:NAME or auto) into frozen models."""
    from .teachers import resolve_teacher
    needed = TEACHERS_NEEDED.get(cfg.method.method, ())
    specs = {"clean": cfg.model.clean_teacher, "robust": cfg.model.robust_teacher}
    return {role: resolve_teacher(role, specs[role], cfg, data, device) for role in needed}


def _init_student(student: nn.Module, spec: str, device: torch.device) -> None:
    """Copy a checkpoint's weights into the fresh student (``--student-init``)."""
    path = checkpoints.resolve_teacher_spec(spec)
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


class Trainer:
    def __init__(self, cfg: Config, run_dir: RunDir | None = None, data: DatasetSplits | None = None) -> None:
        self.cfg = validate(cfg)
        self.dist = ddp = distributed.current()
        if run_dir is None:   # under torchrun rank 0 names the directory; the others use it
            made = RunDir.new(cfg.run.out_dir, cfg.run.name) if ddp.is_main else None
            path = ddp.broadcast_str(str(made.path) if made is not None else None)
            run_dir = made if made is not None else RunDir(path)
        # only rank 0 writes metrics, status and checkpoints
        self.run = run_dir if ddp.is_main else QuietRunDir(run_dir.path)
        self._data = data
        self._trackers: Trackers | None = None
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
        cfg, run = self.cfg, self.run
        r = cfg.run
        if r.threads:
            torch.set_num_threads(r.threads)
        ddp = self.dist
        device = distributed.device_for(ddp, resolve_device(r.device))
        precision = resolve_precision(r.precision, device)
        autocast = autocast_factory(precision, device)
        torch.manual_seed(r.seed)

        # -- data ---------------------------------------------------------------------
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
        eval_split = data.val if len(data.val) else data.test
        if not len(data.val):
            log.warning("no validation split (eval_size=0): epoch checks use the test set, "
                        "and the last epoch's student is kept")
        ev = fixed_subset(eval_split, min(r.eval_size, len(eval_split)), seed=r.seed)
        eval_x, eval_y = to_float(ev.x).to(device), ev.y.to(device)

        # -- models and method ------------------------------------------------------------
        student = prepare_model(build_model(cfg.model.student, data.num_classes), device, r.channels_last)
        if cfg.model.student_init and not resume:
            _init_student(student, cfg.model.student_init, device)
        if not ddp.is_main:   # an 'auto' teacher is trained (and cached) once, by rank 0
            ddp.barrier()
        teachers = {role: prepare_model(m, device, r.channels_last)
                    for role, m in load_teachers(cfg, data, device).items()}
        if ddp.is_main:
            ddp.barrier()
        steps_per_epoch = len(batches)
        total_steps = steps_per_epoch * cfg.optim.epochs
        attacks = cfg.method.method != "natural"
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

        # -- resume ---------------------------------------------------------------------
        epoch, batch0, step, best_score, best = 0, 0, 0, float("-inf"), {}
        if resume and run.last.is_file():
            ck = checkpoints.load(run.last, map_location=device)
            student.load_state_dict(ck["state_dict"])
            optim.load_state_dict(ck["optim"])
            method.load_state_dict(ck["method_state"])
            torch.set_rng_state(ck["rng"]["torch"])
            aug_gen.set_state(ck["rng"]["augment"])
            if device.type == "cuda" and ck["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ck["rng"]["cuda"], device)
            epoch, batch0, step = ck["epoch"], ck["batch"], ck["step"]
            best_score, best = ck.get("best_score", float("-inf")), ck.get("best", {})
            run.truncate_metrics(step, epoch)
            log.info("resumed %s at epoch %d, batch %d (step %d)", run.path, epoch, batch0, step)
        elif resume:
            log.warning("no checkpoint in %s: starting from scratch", run.path)
            run.truncate_metrics(0, 0)   # what the killed process logged is redone from step 1
        if ddp.enabled:
            # per-rank streams for attack starts and augmentation (the checkpoint holds rank
            # 0's; a data-parallel resume continues from fresh per-rank streams, not bit-exact)
            torch.manual_seed(r.seed + _RANK_SEED * ddp.rank + 7 * step)
            aug_gen.manual_seed(r.seed + 1 + _RANK_SEED * ddp.rank + 7 * step)
        self._started = True
        run.write_config(cfg.to_json())
        run.set_status(state="running", step=step, total_steps=total_steps, epoch=epoch,
                       epochs=cfg.optim.epochs, precision=precision, device=str(device),
                       method=cfg.method.method, started=time.time(), processes=ddp.world)
        log.info("run %s: %s, student %s, %d steps (%d epochs x %d), %s on %s%s%s",
                 run.path, cfg.method.method, cfg.model.student, total_steps, cfg.optim.epochs,
                 steps_per_epoch, precision, device, ", compiled attack" if compile_attack else "",
                 f", {ddp.world} processes ({ddp.backend})" if ddp.enabled else "")

        def save_last(next_epoch: int, next_batch: int) -> None:
            if not ddp.is_main:
                return
            rng = {"torch": torch.get_rng_state(), "augment": aug_gen.get_state(),
                   "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
            extra = {}
            if "robust" in teachers:
                extra["robust_meta"] = checkpoints.model_meta(teachers["robust"])
            checkpoints.save({
                "kind": "train", "model": checkpoints.model_meta(student),
                "state_dict": student.state_dict(), "optim": optim.state_dict(),
                "method_state": method.state_dict(), "rng": rng, "config": cfg.to_dict(),
                "epoch": next_epoch, "batch": next_batch, "step": step,
                "best_score": best_score, "best": best, **extra,
            }, run.last)

        # every record goes to the run store and to the trackers asked for (--log)
        self._trackers = Trackers((r.log or "") if ddp.is_main else "", run.path, cfg.to_dict())

        def emit(record: dict[str, Any]) -> None:
            run.append(record)
            self._trackers.log(record)

        log_every = r.log_every or (20 if device.type == "cuda" else 1)
        pending: list[tuple[int, float, float, dict[str, Any]]] = []

        def flush() -> None:
            """Write the pending step records; one device-to-host copy for all of them."""
            if not pending:
                return
            keys = sorted({k for *_, m in pending for k in m})
            nan = float("nan")
            rows = torch.stack([torch.stack([torch.as_tensor(m.get(k, nan), dtype=torch.float32,
                                                             device=device).reshape(())
                                             for k in keys]) for *_, m in pending])
            rows = ddp.mean_(rows).tolist()   # data-parallel: the mean over ranks (= global batch)
            _check_finite_losses(keys, pending, rows)
            elapsed = time.perf_counter() - t_start
            for (st, ep, wall, m), row in zip(pending, rows):
                values = {k: v for k, v in zip(keys, row) if k in m}
                ips = seen * ddp.world / max(elapsed, 1e-9)
                emit({"kind": "step", "step": st, "epoch": ep, "time": wall, **values,
                            "img_per_s": ips})
                progress_bar(st, {**values, "img_per_s": ips})
            pending.clear()
            if time.time() - run.read_heartbeat() > 1.0:   # a heartbeat for watchers
                run.set_status(step=step, epoch=epoch)

        cached_teacher_eval: dict[str, dict[str, float]] = {}
        progress_bar = _progress(total_steps, step, r.progress)
        status = "finished"
        t_start, seen = time.perf_counter(), 0
        while epoch < cfg.optim.epochs:
            for x, y in batches.epoch_batches(epoch, batch0, generator=aug_gen):
                # one step: lr from the schedule, the method's loss, SGD, its post-step work
                progress = step / total_steps
                lr = student_lr(cfg.optim.lr, progress, cfg.optim.lr_schedule)
                if cfg.attack.eps_warmup > 0:
                    method.set_attack_scale(min(1.0, progress / cfg.attack.eps_warmup))
                out, extra = train_step(method, optim, x, y, progress, lr, r.channels_last)
                step += 1
                batch0 += 1
                seen += len(y)

                # metrics stay on the device until a flush: one host sync per log_every steps
                metrics = {**out.metrics, **extra, "loss": out.loss.detach(), "lr": lr}
                if cfg.attack.eps_warmup > 0:
                    metrics["train_eps"] = method.attack.eps
                if out.logits is not None:
                    metrics["train_acc"] = (out.logits.detach().argmax(1) == y).float().mean()
                pending.append((step, epoch + batch0 / steps_per_epoch, time.time(), metrics))
                if step % log_every == 0 or batch0 == steps_per_epoch:
                    flush()

                if ddp.any(stop.raised or (ddp.is_main and run.stop_requested()), device):
                    flush()
                    save_last(epoch, batch0)
                    status = "stopped"
                    break
                if r.checkpoint_every and step % r.checkpoint_every == 0:
                    flush()
                    save_last(epoch, batch0)
                    run.set_status(step=step, epoch=epoch)
            if status == "stopped":
                break

            # -- end of epoch: validation check, best student, checkpoint ------------------
            # (rank 0 alone; the others wait at their next collective)
            score = float("-inf")
            if ddp.enabled:   # the ranks must hold the same student, teacher and scalars
                state = method.state_dict()
                scalars = [v for v in state.values() if torch.is_tensor(v) and v.dim() == 0]
                divergence = ddp.divergence([student, *teachers.values()], scalars, device)
                if divergence > 1e-3:
                    log.warning("ranks disagree after epoch %d (largest state difference %.3g)",
                                epoch + 1, divergence)
            if ddp.is_main:
                record = self._epoch_eval(student, teachers, method, eval_x, eval_y, cached_teacher_eval)
                # mean of validation clean and PGD accuracy (clean alone when PGD is off)
                pgd = record["student_pgd"]
                score = record["student_clean"] if pgd != pgd else (record["student_clean"] + pgd) / 2
                record.update(kind="epoch", epoch=epoch + 1, step=step, score=score, time=time.time())
                if ddp.enabled:
                    record.update(processes=ddp.world, rank_divergence=divergence)
                emit(record)
                log.info("epoch %d/%d: student clean %.1f%% PGD %.1f%% (validation, %d images)",
                         epoch + 1, cfg.optim.epochs, 100 * record["student_clean"],
                         100 * record["student_pgd"], len(eval_y))
            if ddp.is_main and (score > best_score or not len(data.val)):
                best_score = score
                best = {"epoch": epoch + 1, "score": score, **{k: v for k, v in record.items()
                                                                 if k.startswith("student_")}}
                checkpoints.save_model(student, run.best, metrics=best, config=cfg.to_dict())
            epoch, batch0 = epoch + 1, 0
            save_last(epoch, 0)
            run.set_status(step=step, epoch=epoch)
        progress_bar(None, None)

        final: dict[str, Any] = {}
        if status == "finished" and ddp.is_main:
            final = self._final_test(run, data, device, teachers, method)
            emit({"kind": "final", "step": step, "time": time.time(), **final})
        run.set_status(state=status, step=step, epoch=epoch, finished=time.time())
        run.close()
        self._trackers.close(status)
        return TrainResult(str(run.path), status, epoch, step, best, final)

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
        record.update(student_clean=c, student_pgd=p)
        if r.eval_teachers:
            for role, model in teachers.items():
                changes = role == "robust" and getattr(method, "itt_on", False)
                if role not in cache or changes:
                    cache[role] = dict(zip(("clean", "pgd"), self._accuracies(model, x, y, r.eval_pgd_steps)))
                record[f"{role}_teacher_clean"] = cache[role]["clean"]
                record[f"{role}_teacher_pgd"] = cache[role]["pgd"]
        return record

    def _final_test(self, run: RunDir, data: DatasetSplits, device, teachers, method) -> dict[str, Any]:
        """The best student (and final robust teacher if it trained) on the test split, PGD-20."""
        n = min(self.cfg.run.test_size, len(data.test))
        final: dict[str, Any] = {"best_checkpoint": str(run.best)}
        if getattr(method, "itt_on", False):
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
                     test_attack=f"PGD-20, eps {self.cfg.attack.eps:.4g}, step 2/255, uniform start, fp32")
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
