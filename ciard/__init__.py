"""CIARD Studio: adversarial robustness distillation you can run, watch, tune and probe.

Public API: ``load_model(path)`` returns an eval-mode model from a checkpoint (a file, a run
directory's ``best.pt`` or ``zoo:NAME``); ``build_model(name, num_classes)`` builds any
registered architecture.
"""
from __future__ import annotations

import os as _os
import sys as _sys

# Apple GPUs (MPS): operators without an MPS kernel run on the CPU instead of stopping the run.
# torch reads this once, when it is imported, so it is set here, before any torch import.
if _sys.platform == "darwin" and "torch" not in _sys.modules:
    _os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

__version__ = "0.1.0"


# The two functions import on call: ``import ciard`` stays light (no torch), which the line
# above relies on and which keeps ``ciard --help`` quick.
def load_model(path, device="cpu", role: str = "student"):
    """An eval-mode model rebuilt from a checkpoint, run directory or ``zoo:NAME``."""
    from .specs import load_model as _load
    return _load(path, device=device, role=role)


def build_model(name: str, num_classes: int = 10, **kwargs):
    from .models import build_model as _build
    return _build(name, num_classes, **kwargs)


__all__ = ["load_model", "build_model", "__version__"]
