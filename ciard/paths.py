"""Paths people type (CLI flags, config files, the app's text boxes): refused with one line.

``Path("~nosuchuser/x").expanduser()`` raises, and ``Path(p).is_file()`` raises on a name part
longer than the file system allows (255 bytes) or on a NUL byte. Every typed path goes through
:func:`path_problem` (or :func:`user_path`) first, so such a value is one clear line wherever
it is typed, never a traceback.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

#: the longest name part and whole path Linux file systems accept (bytes)
NAME_MAX = 255
PATH_MAX = 4095


def shorten(value: object, limit: int = 60) -> str:
    """A value quoted for a one-line message; long ones cut in the middle, with their length."""
    text = str(value)
    if len(text) > limit:
        text = f"{text[:limit // 2]}…{text[-(limit // 4):]} ({len(str(value))} characters)"
    return repr(text) if "\n" in text or "\r" in text else f"'{text}'"


def path_problem(text: str | os.PathLike | None) -> str | None:
    """One line saying why ``text`` cannot be a path here, or None if it can be tried."""
    raw = "" if text is None else os.fspath(text)
    if not raw.strip():
        return "the path is empty"
    if "\0" in raw:
        return f"the path {shorten(raw)} contains a NUL character"
    if any(c in raw for c in "\n\r"):
        return f"the path {shorten(raw)} contains a line break"
    if raw.startswith("~"):
        try:
            expanded = os.fspath(Path(raw).expanduser())
        except RuntimeError:
            user = raw[1:].split("/", 1)[0]
            return f"the path {shorten(raw)} starts with ~{user}, but there is no user '{user}'"
    else:
        expanded = raw
    encoded = os.fsencode(expanded)
    if len(encoded) > PATH_MAX:
        return f"the path {shorten(raw)} is longer than {PATH_MAX} bytes"
    for part in encoded.split(b"/"):
        if len(part) > NAME_MAX:
            return f"the path {shorten(raw)} has a name part longer than {NAME_MAX} bytes"
    return None


def user_path(text: str | os.PathLike | None, what: str = "path") -> Path:
    """``text`` as an expanded Path, or ConfigError naming ``what`` and why it cannot be one."""
    problem = path_problem(text)
    if problem:
        raise ConfigError(f"{what}: {problem}")
    return Path(os.fspath(text)).expanduser()  # type: ignore[arg-type]
