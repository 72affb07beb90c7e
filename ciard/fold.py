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
"""
from __future__ import annotations

import logging

import torch
import torch.fx as fx
import torch.nn as nn

from .runtime import exact_dtype

log = logging.getLogger(__name__)


def _set_module(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


class FoldedEval(nn.Module):
    """An eval-only view of ``model`` with Conv2d -> BatchNorm2d pairs folded.

    Use it where the model would be in eval mode (attacks put it there). Modules it does not
    fold are the original's own objects, so their train/eval flag is shared with the original.
    """

    def __init__(self, model: nn.Module, channels_last: bool | None = None) -> None:
        super().__init__()
        gm = fx.symbolic_trace(model)
        modules = dict(gm.named_modules())
        self._pairs: list[tuple[nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]] = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
                continue
            src = node.args[0]
            if not (isinstance(src, fx.Node) and src.op == "call_module"
                    and isinstance(modules.get(src.target), nn.Conv2d) and len(src.users) == 1):
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
