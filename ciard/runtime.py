"""Where and how tensors run: device choice, precision (bf16 autocast) and memory format.

Devices: CUDA GPUs, Apple GPUs through MPS, and the CPU. On MPS, operators that torch has no
MPS kernel for run on the CPU when ``PYTORCH_ENABLE_MPS_FALLBACK=1`` was set before torch was
imported (``import ciard`` sets it on macOS, if torch is not imported yet); float64 is not
available there (:func:`exact_dtype`), the attack is not compiled (:func:`compile_supported`)
and ``auto`` precision is fp32.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
from typing import Callable

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU, else Apple's GPU (MPS), else the CPU.

    A device that is asked for by name but absent raises :class:`ConfigError` (one line).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' asked for, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' asked for, but there are only "
                              f"{torch.cuda.device_count()} CUDA GPUs")
    elif device.type == "mps":
        if not mps_available():
            raise ConfigError(f"device '{name}' asked for, but MPS (an Apple-silicon GPU with "
                              "macOS 12.3+ and a torch built with MPS) is not available")
        if os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") != "1":
            log.warning("PYTORCH_ENABLE_MPS_FALLBACK is not 1: an operator without an MPS kernel "
                        "will stop the run (set it before Python starts, or use --device cpu)")
    elif device.type != "cpu":
        raise ConfigError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU): for timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def exact_dtype(device: torch.device) -> torch.dtype:
    """The widest float the device computes in: float64, except on MPS (no float64 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


def compile_supported(device: torch.device) -> bool:
    """Whether this project uses torch.compile on the device: not on MPS (not tried there)."""
    return device.type != "mps"


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
    """``auto`` -> bf16 on CUDA GPUs with bf16 and on CPUs with AMX / AVX-512 BF16, else fp32.

    On MPS ``auto`` is fp32 (bf16 autocast there is untested here); an explicit bf16 needs
    macOS 14 or later, where MPS has bf16 kernels, and otherwise raises :class:`ConfigError`.
    """
    if device.type == "mps":
        if precision == "bf16" and not torch.backends.mps.is_macos_or_newer(14, 0):
            raise ConfigError("precision bf16 on MPS needs macOS 14 or later; use --precision fp32")
        return "fp32" if precision == "auto" else precision
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


def device_name(dev: torch.device) -> str:
    """What a device is, in words: the GPU's name, or the CPU's model and torch's thread count."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return f"Apple GPU (MPS) on {platform.machine()}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"
