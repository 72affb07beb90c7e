"""Eval-mode BatchNorm folding: the same function as ``model.eval()``, with fewer operations.

In eval mode a BatchNorm after a convolution is an affine map per channel, so it can be
folded into the convolution's weight and bias. Attacks run the model in eval mode, and the
frozen clean teacher is always in eval mode, so both can use a folded copy: the function is
the same (up to float rounding) while each forward and backward skips every folded BN, a
memory-bound operation that costs a good share of a small CNN's time on a CPU.

``FoldedEval(model)`` traces the model once (torch.fx) and shares every parameter it does not
fold with the original; ``refresh()`` re-reads the folded weights from the original's current
convolution and BatchNorm state, so a student that trains can be refolded at each step for
the price of a few small tensor operations.

The view is pinned to eval mode. A BatchNorm it cannot fold (in a pre-activation network such
as a WRN or PreAct-ResNet it follows an addition, not a convolution) is run by the view with
its running statistics whatever its own train/eval flag, dropout is left out, and
``view.train()`` / ``view.eval()`` change nothing: switching the view must never switch the
original's modules, which it shares (that once left a frozen teacher's BatchNorms in train
mode after an evaluation, and its running statistics drifted).
"""
from __future__ import annotations

import logging

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from .runtime import exact_dtype

log = logging.getLogger(__name__)


def _set_module(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


class _EvalBatchNorm(nn.Module):
    """An unfolded BatchNorm as the eval view runs it: always on its running statistics.

    It reads the original BatchNorm's current parameters and buffers at every call (nothing
    to refresh) and ignores the original's train/eval flag.
    """

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        batch_stats = bn.running_mean is None   # no running statistics: eval uses the batch's
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            batch_stats, 0.0, bn.eps)


class FoldedEval(nn.Module):
    """An eval-only view of ``model`` with Conv2d -> BatchNorm2d pairs folded.

    It computes ``model``'s eval-mode function whatever the modes of the original's modules,
    and ``train(mode)`` leaves it (and them) as they are: see the module docstring.
    """

    def __init__(self, model: nn.Module, channels_last: bool | None = None) -> None:
        super().__init__()
        self.training = False
        gm = fx.symbolic_trace(model)
        modules = dict(gm.named_modules())
        self._pairs: list[tuple[nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]] = []
        unfolded: list[fx.Node] = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module":
                continue
            if isinstance(modules.get(node.target), nn.Dropout):   # identity in eval mode
                node.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(node)
                continue
            if not isinstance(modules.get(node.target), _BatchNorm):
                continue
            src = node.args[0]
            if not (isinstance(modules.get(node.target), nn.BatchNorm2d) and isinstance(src, fx.Node)
                    and src.op == "call_module" and isinstance(modules.get(src.target), nn.Conv2d)
                    and len(src.users) == 1):
                unfolded.append(node)
                continue
            conv, bn = modules[src.target], modules[node.target]
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding, conv.dilation, conv.groups, bias=True,
                              padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
            if channels_last or (channels_last is None
                                 and conv.weight.is_contiguous(memory_format=torch.channels_last)):
                fused = fused.to(memory_format=torch.channels_last)
            fused.requires_grad_(False)
            # a fresh name: the original conv object stays untouched in the source model
            name = f"folded_{len(self._pairs)}"
            gm.add_submodule(name, fused)
            src.target = name
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
            self._pairs.append((fused, conv, bn))
        for i, node in enumerate(unfolded):
            name = f"eval_bn_{i}"
            gm.add_submodule(name, _EvalBatchNorm(modules[node.target]))
            node.target = name
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
        self.gm = gm
        self.arch = getattr(model, "arch", None)
        self.num_classes = getattr(model, "num_classes", None)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> "FoldedEval":
        """Recompute folded weights: w' = w * g / sqrt(v + e), b' = (b - m) * g / sqrt(v + e) + beta."""
        for fused, conv, bn in self._pairs:
            dt = exact_dtype(conv.weight.device)   # float64, or float32 where there is none (MPS)
            scale = torch.rsqrt(bn.running_var.to(dt) + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.to(dt)
            shift = -bn.running_mean.to(dt) * scale
            if bn.bias is not None:
                shift = shift + bn.bias.to(dt)
            if conv.bias is not None:
                shift = shift + conv.bias.to(dt) * scale
            fused.weight.copy_(conv.weight.to(dt) * scale.view(-1, 1, 1, 1))
            fused.bias.copy_(shift)
        return self

    def train(self, mode: bool = True) -> "FoldedEval":
        """No-op: the view is always in eval mode and never switches the original's modules."""
        self.training = False
        return self

    @property
    def folded(self) -> int:
        return len(self._pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gm(x)


def fold(model: nn.Module, channels_last: bool | None = None) -> nn.Module:
    """``FoldedEval(model)``, or the model itself where tracing fails (logged, never fatal).

    ``channels_last``: the memory format of the folded convolutions (None: as the original's).
    """
    try:
        return FoldedEval(model, channels_last)
    except Exception as exc:  # an untraceable custom model: correctness first
        log.warning("BatchNorm folding skipped for %s: %s", type(model).__name__, exc)
        return model
