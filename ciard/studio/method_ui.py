"""Data for the Method page's schedule figure (no Streamlit)."""
from __future__ import annotations

from .. import schedules


def schedule_data(lr: float, itt_lr: float, warmup: float, points: int = 201
                  ) -> tuple[list[float], dict[str, list[float]]]:
    prog = [i / (points - 1) for i in range(points)]
    return prog, {"student lr": [schedules.student_lr(lr, p, "ciard") for p in prog],
                  "ITT lr (robust teacher)": [schedules.itt_lr(itt_lr, p, warmup) for p in prog]}
