"""Cooperative cancellation for long loops (decoding a dataset) run inside the app.

The app's script thread sets a check with :func:`checking` (Streamlit's stop/rerun check); the
data layer's loops call :func:`poll` once per file, which raises whatever the check raises
when the page was left, rerun or closed. Outside the app no check is set and :func:`poll` costs
one context-variable lookup.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

_check: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("ciard_cancel", default=None)


def poll() -> None:
    """Raise if the current work was asked to stop (the check's own exception)."""
    check = _check.get()
    if check is not None:
        check()


@contextlib.contextmanager
def checking(check: Callable[[], None] | None) -> Iterator[None]:
    """Within the block, :func:`poll` calls ``check`` (None: nothing to check)."""
    token = _check.set(check)
    try:
        yield
    finally:
        _check.reset(token)
