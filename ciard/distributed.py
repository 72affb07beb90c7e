"""Data-parallel training under ``torchrun`` (NCCL on GPUs, gloo on CPUs).

``torchrun --nproc-per-node N -m ciard train ...`` starts N copies of the trainer; this module
turns them into one run:

* each rank takes a disjoint 1/N of every global batch (``--batch-size`` stays the global
  batch; the shard comes from :class:`torch.utils.data.DistributedSampler` over the epoch's
  permutation, so the N shards of step k together are exactly the 1-process batch k);
* gradients of the student, and of the robust teacher when ITT trains it, are averaged
  across ranks before each optimiser step (what DDP does, written out so that the method
  code keeps its shape and ITT's second optimiser is covered too);
* the statistics that drive CIARD's scalar state (entropies for the temperatures, KD losses
  for the weights and the push-loss scale) are averaged before use, so temperatures, weights
  and the push scale are identical on every rank;
* BatchNorm running statistics are averaged after each step (batch statistics inside a
  forward pass stay per rank: that is what legitimately differs from a 1-process run);
* parameters start identical (broadcast from rank 0); attack starts and augmentation draw
  from per-rank seeds; only rank 0 writes metrics, checkpoints and the run's status.

One process (no ``WORLD_SIZE`` in the environment) gets :data:`SINGLE`, whose operations are
all no-ops, so the trainer has a single code path.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
import torch.nn as nn

log = logging.getLogger(__name__)

#: seconds a collective may wait for a peer before the job fails (a killed rank is usually
#: noticed at once by the transport; this bounds the rest)
DEFAULT_TIMEOUT = float(os.environ.get("CIARD_DIST_TIMEOUT", "600"))


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops in one process) ------------------------------------------
    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """Average ``t`` over ranks, in place; returns it."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t.div_(self.world)
        return t

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The rank-average of ``t`` as a new tensor (``t`` is left alone)."""
        return self.mean_(t.detach().clone()) if self.enabled else t

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Average .grad over ranks with one flat all-reduce (grads missing on a rank count as 0)."""
        if not self.enabled:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.mean_(flat)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def sync_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (BatchNorm running mean/var) over ranks."""
        if not self.enabled:
            return
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        if not bufs:
            return
        flat = self.mean_(torch.cat([b.reshape(-1).float() for b in bufs]))
        offset = 0
        for b in bufs:
            n = b.numel()
            b.copy_(flat[offset:offset + n].view_as(b))
            offset += n

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere."""
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is true on any rank (stop requests)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_str(self, value: str | None) -> str | None:
        """Rank 0's string on every rank (e.g. the run directory it created)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def divergence(self, modules: Iterable[nn.Module], scalars: Iterable[torch.Tensor],
                   device: torch.device) -> float:
        """Largest difference between ranks of a fingerprint of the training state.

        The fingerprint: per module the sum and the sum of squares of its parameters, and the
        given scalars (temperatures, KD weights). 0 means the ranks agree; every rank calls it.
        """
        if not self.enabled:
            return 0.0
        parts = []
        for m in modules:
            flat = torch.cat([p.detach().float().reshape(-1) for p in m.parameters()])
            parts += [flat.sum(), flat.square().sum()]
        parts += [torch.as_tensor(t, dtype=torch.float32, device=device).reshape(()) for t in scalars]
        mine = torch.stack([p.to(device) for p in parts])
        everyone = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(everyone, mine)
        stacked = torch.stack(everyone)
        return float((stacked.max(0).values - stacked.min(0).values).abs().max())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = Dist()
_current: Dist = SINGLE


def current() -> Dist:
    return _current


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (idempotent); :data:`SINGLE` without one.

    NCCL when the run's device is CUDA (one GPU per local rank), gloo otherwise.
    """
    global _current
    if _current.enabled or not launched_by_torchrun():
        return _current
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=DEFAULT_TIMEOUT))
    _current = Dist(rank=rank, world=world, local_rank=local_rank, backend=backend)
    log.info("rank %d of %d (%s)", rank, world, backend)
    return _current


def device_for(d: Dist, device: torch.device) -> torch.device:
    """Each rank's own GPU under NCCL; the configured device otherwise."""
    if d.enabled and device.type == "cuda":
        return torch.device("cuda", d.local_rank)
    return device


def shutdown() -> None:
    global _current
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _current = SINGLE
