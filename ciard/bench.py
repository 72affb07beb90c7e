"""``python -m ciard bench``: time training steps (and PGD evaluation) against a reference.

In one process, on the same batch of real images and the same models, it times:
  * the trainer's own step (:func:`ciard.trainer.train_step`, i.e. exactly what training runs),
    in the chosen precision, memory format and options;
  * for CIARD, a reference step that mirrors the published implementation's structure
    (:mod:`ciard.reference_step`: fp32, NCHW, separate passes, the unused teacher forward);
  * with ``--eval``, PGD-20 in fp32 (this project's attack on a BatchNorm-folded view) against
    ``torchattacks.PGD`` on the same model and batch.
It also sets the trainer's step against the machine's own limit (:mod:`ciard.roofline`): the
step's FLOPs per image (counted once, in fp32 and uncompiled, over the same ``train_step`` on
copies of the same models and batch), the GFLOP/s that the timed step thus achieves, and the
GFLOP/s of a large square matmul in the step's precision, timed in the same run.
Each figure is the time of ``--steps`` steps after ``--warmup`` untimed ones, repeated
``--rounds`` times alternating the two; the best round of each is reported (the least
disturbed by other work on the machine) and every round's figure is in the JSON.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import torch

from .config import Config
from .data import fixed_subset, load_dataset, to_float
from .methods import build_method
from .models import build_model
from .reference_step import ReferenceCIARD
from .roofline import count_flops, matmul_peak
from .runtime import (autocast_factory, compile_supported, device_name, prepare_model, resolve_device,
                      resolve_precision, synchronize)
from .trainer import train_step


def _timed(fn: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls, synchronising the device only at the ends."""
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronize(device)
    return time.perf_counter() - t0


def run_bench(*, method: str = "ciard", student: str = "resnet20", clean_teacher: str = "resnet56",
              robust_teacher: str = "resnet56", batch_size: int = 128, pgd_steps: int = 10,
              precision: str = "auto", device: str = "auto", channels_last: bool = True,
              fold_bn: bool = True, steps: int = 3, warmup: int = 1, rounds: int = 2,
              reference: bool = True, eval_bench: bool = False, seed: int = 0,
              profile: bool = False, compile_attack: bool = True, peak_size: int = 0) -> dict[str, Any]:
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    compile_attack = compile_attack and compile_supported(dev)
    cfg = Config().override(method=method, student=student, batch_size=batch_size,
                            pgd_steps=pgd_steps, pgd_step_size=2 / 255, itt_warmup=0.0,
                            precision=prec, device=str(dev), channels_last=channels_last,
                            fold_bn=fold_bn, clean_teacher=None, robust_teacher=None)
    data = load_dataset("default", seed=seed)
    sub = fixed_subset(data.train, batch_size, seed=seed)
    x, y = to_float(sub.x).to(dev), sub.y.to(dev)
    if len(y) < batch_size:  # the embedded set is small; repeat it for big GPU batches
        reps = -(-batch_size // len(y))
        x, y = x.repeat(reps, 1, 1, 1)[:batch_size], y.repeat(reps)[:batch_size]

    torch.manual_seed(seed)
    s0 = build_model(student)
    teachers0 = {"clean": build_model(clean_teacher), "robust": build_model(robust_teacher)}
    out: dict[str, Any] = {
        "method": method, "student": student, "clean_teacher": clean_teacher,
        "robust_teacher": robust_teacher, "batch_size": batch_size, "pgd_steps": pgd_steps,
        "precision": prec, "channels_last": channels_last, "fold_bn": fold_bn,
        "compile_attack": compile_attack,
        "device": str(dev), "device_name": device_name(dev), "threads": torch.get_num_threads(),
        "steps": steps, "warmup": warmup, "rounds": rounds,
    }

    # -- the trainer's step --------------------------------------------------------------
    fast_student = prepare_model(copy.deepcopy(s0), dev, channels_last)
    fast_teachers = {r: prepare_model(copy.deepcopy(m), dev, channels_last) for r, m in teachers0.items()}
    fast_method = build_method(cfg, fast_student, fast_teachers, autocast_factory(prec, dev),
                               compile_attack=compile_attack)
    opt = torch.optim.SGD(fast_student.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)

    def fast() -> None:
        train_step(fast_method, opt, x, y, 0.5, 0.01, channels_last)

    ref_step = None
    if reference and method == "ciard":
        ref = ReferenceCIARD(cfg, copy.deepcopy(s0).to(dev), copy.deepcopy(teachers0["clean"]).to(dev),
                             copy.deepcopy(teachers0["robust"]).to(dev))
        x_ref = x.contiguous()

        def ref_step() -> None:
            ref.step(x_ref, y, 0.5, 0.01)

    for _ in range(warmup):
        fast()
        if ref_step:
            ref_step()
    fast_times, ref_times = [], []
    for _ in range(rounds):
        fast_times.append(_timed(fast, steps, dev))
        if ref_step:
            ref_times.append(_timed(ref_step, steps, dev))
    out["img_per_s"] = batch_size * steps / min(fast_times)
    out["img_per_s_rounds"] = [batch_size * steps / t for t in fast_times]
    if ref_step:
        out["reference_img_per_s"] = batch_size * steps / min(ref_times)
        out["reference_img_per_s_rounds"] = [batch_size * steps / t for t in ref_times]
        out["speedup"] = out["img_per_s"] / out["reference_img_per_s"]

    out.update(_roofline(cfg, s0, teachers0, x, y, dev, channels_last, out["img_per_s"], prec, peak_size))

    if profile:
        out["profile"] = {"fast": _profile(fast)}
        if ref_step:
            out["profile"]["reference"] = _profile(ref_step)

    if eval_bench:
        out.update(_eval_bench(s0, x, y, dev, rounds, steps=20))
    return out


def _roofline(cfg: Config, s0: torch.nn.Module, teachers0: dict[str, torch.nn.Module], x: torch.Tensor,
              y: torch.Tensor, dev: torch.device, channels_last: bool, img_per_s: float, prec: str,
              peak_size: int) -> dict[str, Any]:
    """FLOPs of one trainer step per image, achieved GFLOP/s, and the matmul peak to set them against.

    The step is counted on fresh copies of the models, in fp32 and uncompiled (the count must
    not depend on precision, and a compiled graph hides its operators from the counter).
    """
    student = prepare_model(copy.deepcopy(s0), dev, channels_last)
    teachers = {r: prepare_model(copy.deepcopy(m), dev, channels_last) for r, m in teachers0.items()}
    method = build_method(cfg.override(precision="fp32"), student, teachers, autocast_factory("fp32", dev))
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    flops, by_op = count_flops(lambda: train_step(method, opt, x, y, 0.5, 0.01, channels_last))
    per_image = flops / len(y)
    achieved = per_image * img_per_s / 1e9
    peak = matmul_peak(dev, prec, n=peak_size)
    return {"flops_per_image": per_image, "flops_by_op": by_op,
            "flops_counted": "fp32, uncompiled, one train_step, torch FlopCounterMode "
                             "(convolutions and matmuls, forward and backward)",
            "gflops_per_s": achieved, "peak_gflops_per_s": peak["gflops_per_s"], "peak_matmul": peak,
            "fraction_of_peak": achieved / peak["gflops_per_s"]}


def _eval_bench(model0: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dev: torch.device,
                rounds: int, steps: int) -> dict[str, Any]:
    """PGD-20 (eps 8/255, step 2/255, fp32): this project's evaluation path vs torchattacks.PGD."""
    import torchattacks

    from .attacks import PGD
    from .fold import fold
    model = copy.deepcopy(model0).to(dev).eval()
    ours = PGD(8 / 255, steps, 2 / 255, start="uniform")
    view = fold(model, channels_last=True)
    theirs = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=steps, random_start=True)
    ours(view, x, y)
    theirs(x, y)
    t_ours = [_timed(lambda: ours(view, x, y), 1, dev) for _ in range(rounds)]
    t_theirs = [_timed(lambda: theirs(x, y), 1, dev) for _ in range(rounds)]
    n = len(y)
    return {"eval_attack": f"PGD-{steps}, eps 8/255, step 2/255, fp32",
            "eval_img_per_s": n / min(t_ours), "torchattacks_img_per_s": n / min(t_theirs),
            "eval_speedup": min(t_theirs) / min(t_ours)}


def _profile(fn: Callable[[], Any], top: int = 12) -> list[dict[str, Any]]:
    """Self CPU/GPU time per operator over one step: where the time goes."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
             "share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in rows]


def format_bench(r: dict[str, Any]) -> str:
    lines = [f"{r['method']}: student {r['student']}, teachers {r['clean_teacher']} / {r['robust_teacher']}, "
             f"batch {r['batch_size']}, PGD-{r['pgd_steps']}, {r['precision']}, "
             f"channels_last={r['channels_last']}, fold_bn={r['fold_bn']}, "
             f"compile_attack={r['compile_attack']}, on {r['device_name']}",
             f"  trainer step    {r['img_per_s']:8.1f} img/s   (rounds: "
             + ", ".join(f"{v:.1f}" for v in r["img_per_s_rounds"]) + ")"]
    if "reference_img_per_s" in r:
        lines.append(f"  reference step  {r['reference_img_per_s']:8.1f} img/s   (rounds: "
                     + ", ".join(f"{v:.1f}" for v in r["reference_img_per_s_rounds"]) + ")")
        lines.append(f"  speedup         {r['speedup']:8.2f}x")
    if "flops_per_image" in r:
        pk = r["peak_matmul"]
        lines.append(f"  FLOPs per image {r['flops_per_image'] / 1e9:8.3f} GFLOP  (one trainer step, counted in fp32)")
        lines.append(f"  achieved        {r['gflops_per_s']:8.1f} GFLOP/s = {100 * r['fraction_of_peak']:.1f}% of "
                     f"the matmul peak {r['peak_gflops_per_s']:.1f} GFLOP/s ({pk['n']}x{pk['n']} {pk['dtype']}, "
                     f"best of {pk['rounds']} rounds of {pk['reps']})")
    if "eval_img_per_s" in r:
        lines.append(f"  {r['eval_attack']}: ours {r['eval_img_per_s']:.1f} img/s, torchattacks "
                     f"{r['torchattacks_img_per_s']:.1f} img/s, {r['eval_speedup']:.2f}x")
    for name, rows in r.get("profile", {}).items():
        lines.append(f"  profile, {name} step (self CPU time):")
        lines += [f"    {row['op']:<40} {row['self_cpu_ms']:9.1f} ms {100 * row['share']:5.1f}%  x{row['calls']}"
                  for row in rows]
    return "\n".join(lines)
