"""Training objectives by name: ``build_method(cfg, student, teachers, autocast)``."""
from __future__ import annotations

from .adaad import AdaAD
from .ard import ARD
from .base import Method, StepOutput, freeze
from .ciard import CIARD
from .dgad import DGAD
from .kdiga import KDIGA
from .mtard import MTARD
from .natural import Natural
from .peeraid import PeerAiD
from .pgd_at import FGSMAT, PGDAT
from .rslad import RSLAD
from .trades import TRADES

METHOD_CLASSES: dict[str, type[Method]] = {
    cls.name: cls for cls in (CIARD, MTARD, RSLAD, ARD, PGDAT, TRADES, Natural, FGSMAT,
                               DGAD, AdaAD, KDIGA, PeerAiD)
}


def build_method(cfg, student, teachers, autocast=None, compile_attack: bool = False,
                 **kw) -> Method:
    """``kw``: further Method options, e.g. ``bounds=None`` for unbounded 2-D inputs."""
    import contextlib
    cls = METHOD_CLASSES[cfg.method.method]
    return cls(cfg, student, teachers, autocast=autocast or contextlib.nullcontext,
               compile_attack=compile_attack, **kw)


__all__ = ["Method", "StepOutput", "freeze", "build_method", "METHOD_CLASSES"]
