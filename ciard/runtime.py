"""Where and how tensors run: device choice, precision (bf16 autocast) and memory format."""
from __future__ import annotations

import contextlib
import functools
import logging
from typing import Callable

import torch

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' asked for, but no CUDA GPU is available")
    return device


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """AMX or AVX-512 BF16: where bf16 convolutions beat fp32 on the CPU."""
    capability = ""
    with contextlib.suppress(Exception):
        capability = torch.backends.cpu.get_cpu_capability()
    flags = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    return "amx_bf16" in flags or "avx512_bf16" in flags or "AMX" in capability.upper()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA GPUs with bf16 and on CPUs with AMX / AVX-512 BF16, else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def autocast_factory(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A zero-argument context factory: bf16 autocast, or a no-op for fp32."""
    if precision == "bf16":
        return functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def prepare_model(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
