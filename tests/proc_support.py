"""Processes below a test's child, found from /proc (no pgrep, no pids written into a test)."""
from __future__ import annotations

import re
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(re.search(r"^PPid:\s+(\d+)", (entry / "status").read_text(), re.M).group(1))
            except (OSError, AttributeError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
