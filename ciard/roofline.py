"""The machine's own limit, for ``python -m ciard bench``: a step's FLOPs and the matmul peak.

A convolutional network's training step is, arithmetically, convolutions and matrix products
(forward, input gradients, weight gradients); the fastest that this machine multiplies
matrices in a given precision bounds it. So ``bench`` reports

* ``count_flops``: the floating-point operations of one call, as torch's own
  :class:`~torch.utils.flop_counter.FlopCounterMode` counts them (convolutions, matmuls and
  their backward passes, 2 per multiply-add; elementwise work, BatchNorm, softmax and the
  optimiser count 0, so the figure is a lower bound of the work done);
* ``matmul_peak``: GFLOP/s of a large square matrix product in the step's precision, best of
  a few rounds, in the same process, on the same device and threads.

Achieved GFLOP/s = FLOPs per image x images/s; its share of the peak is how close the step
comes to what the machine can do.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .runtime import synchronize

#: default side of the square matrices: big enough to reach the peak, small enough to be quick
PEAK_SIZE = {"cpu": 2048, "cuda": 8192, "mps": 4096}
#: products per timed round
PEAK_REPS = {"cpu": 2, "cuda": 20, "mps": 10}


class _NoModuleTracking:
    """Stands in for FlopCounterMode's per-module attribution, which hooks every module's
    backward and so fails inside ``torch.autograd.grad`` (the attacks' input gradients: "A leaf
    node was passed to _will_engine_execute_node ..."). Totals need no attribution."""

    parents = {"Global"}

    def __enter__(self) -> "_NoModuleTracking":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def count_flops(fn: Callable[[], Any]) -> tuple[int, dict[str, int]]:
    """(total FLOPs, FLOPs per operator) of one call of ``fn``."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    with counter:
        fn()
    by_op = {str(op).split(".")[-1]: int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def matmul_peak(device: torch.device, precision: str, n: int = 0, rounds: int = 3,
                reps: int = 0) -> dict[str, Any]:
    """GFLOP/s of ``n x n`` by ``n x n`` products in ``precision`` (fp32 or bf16), best of rounds.

    On CUDA in fp32 the products use TF32 exactly when cuDNN's convolutions do (torch's
    default), so that the peak is the one the step's convolutions face; ``dtype`` in the
    result says which it was.
    """
    n = n or PEAK_SIZE.get(device.type, 2048)
    reps = reps or PEAK_REPS.get(device.type, 2)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    label = "bf16" if precision == "bf16" else "fp32"
    tf32 = contextlib.nullcontext()
    if device.type == "cuda" and dtype == torch.float32:
        allow = _cudnn_conv_tf32()
        label = "tf32" if allow else "fp32"
        tf32 = _cuda_matmul_tf32(allow)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    with tf32:
        torch.mm(a, b)   # untimed: library start-up, kernel choice
        synchronize(device)
        seconds = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            synchronize(device)
            seconds.append(time.perf_counter() - t0)
    flops = 2 * n ** 3 * reps
    return {"n": n, "dtype": label, "reps": reps, "rounds": rounds,
            "gflops_per_s": flops / min(seconds) / 1e9,
            "gflops_per_s_rounds": [flops / s / 1e9 for s in seconds]}


def _cudnn_conv_tf32() -> bool:
    """Whether cuDNN's fp32 convolutions may use TF32 (torch >= 2.9 API, else the legacy flag)."""
    precision = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if precision is None:
        return bool(torch.backends.cudnn.allow_tf32)
    for parent in (torch.backends.cudnn, torch.backends):   # "none": inherited
        if precision == "none":
            precision = getattr(parent, "fp32_precision", "none")
    return precision == "tf32"


@contextlib.contextmanager
def _cuda_matmul_tf32(allow: bool):
    """cuBLAS fp32 products with or without TF32, restored after (one API: mixing them raises)."""
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision")
    old = matmul.fp32_precision if new_api else matmul.allow_tf32
    if new_api:
        matmul.fp32_precision = "tf32" if allow else "ieee"
    else:
        matmul.allow_tf32 = allow
    try:
        yield
    finally:
        if new_api:
            matmul.fp32_precision = old
        else:
            matmul.allow_tf32 = old
