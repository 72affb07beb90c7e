"""The URL query parameters a page reads, each clamped to its widget's range: one table.

A shared link (``/adversarial?img=3&attack=fgsm&eps=8``) seeds the page's widgets once per
session. Streamlit raises (and keeps raising for the session) when a widget's value lies
outside its range, so every value from the URL is clamped to the range the widget itself is
drawn with, and the widgets take their ranges from this same table. A value that is not a
number, or not one of the choices, is ignored.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..explain import ATTACKS


@dataclass(frozen=True)
class IntParam:
    key: str                 # the widget's session-state key
    low: int
    high: int | None         # None: the page knows it (e.g. the last test image's index)


@dataclass(frozen=True)
class ChoiceParam:
    key: str
    choices: tuple[str, ...]


#: Clean-vs-adversarial page: query name -> its widget
ADVERSARIAL: dict[str, IntParam | ChoiceParam] = {
    "img": IntParam("adv_idx", 0, None),
    "eps": IntParam("adv_eps", 0, 16),            # /255
    "steps": IntParam("adv_steps", 1, 50),
    "attack": ChoiceParam("adv_attack", tuple(ATTACKS)),
    "source": ChoiceParam("adv_source", ("student", "robust_teacher", "clean_teacher")),
}


def parse_int(text: Any) -> int | None:
    """An integer from URL text ("12", "12.0"); None for anything else (nan, inf, "abc")."""
    try:
        return int(str(text).strip())
    except ValueError:
        pass
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def clamp(value: int, low: int, high: int | None) -> int:
    return max(low, value) if high is None else min(max(low, value), high)


def apply_query(query: Mapping[str, Any], state: MutableMapping[str, Any],
                table: Mapping[str, IntParam | ChoiceParam], highs: Mapping[str, int] | None = None) -> None:
    """Copy the query's values into ``state`` under their widgets' keys, each within its range.

    ``highs`` gives the upper bounds the table leaves to the page, by query name.
    """
    for name, param in table.items():
        if name not in query:
            continue
        raw = query[name]
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else ""
        if isinstance(param, ChoiceParam):
            if raw in param.choices:
                state[param.key] = raw
            continue
        value = parse_int(raw)
        if value is not None:
            high = param.high if param.high is not None else (highs or {}).get(name)
            state[param.key] = clamp(value, param.low, high)
