"""Seed groups on the Runs page: each group's mean score with a 95 % t interval, and an honest
verdict between groups (overlapping intervals: the difference is not established).

No Streamlit here; the table comes from :func:`ciard.studio.metrics.runs_table`.
"""
from __future__ import annotations

import itertools
import math

import pandas as pd

from ..stats import MeanInterval, mean_interval


def group_intervals(table: pd.DataFrame, score: str) -> dict[str, MeanInterval]:
    """{group: mean and 95 % interval of ``score`` over its runs that have one}."""
    out = {}
    if score not in table or "group" not in table:
        return out
    for group, rows in table[table["group"] != ""].groupby("group", sort=True):
        values = [v for v in rows[score].tolist() if isinstance(v, (int, float)) and v == v]
        if values:
            out[str(group)] = mean_interval(values)
    return out


def intervals_frame(intervals: dict[str, MeanInterval], score: str) -> pd.DataFrame:
    rows = [{"group": g, "runs with a score": i.n, f"mean {score}": round(i.mean, 2),
             "95 % interval": "needs 2 runs" if math.isnan(i.low) else f"{i.low:.2f} to {i.high:.2f}"}
            for g, i in intervals.items()]
    return pd.DataFrame(rows, columns=["group", "runs with a score", f"mean {score}", "95 % interval"])


def verdicts(intervals: dict[str, MeanInterval], score: str) -> list[str]:
    """One sentence per pair of groups."""
    out = []
    for (a, ia), (b, ib) in itertools.combinations(intervals.items(), 2):
        if math.isnan(ia.low) or math.isnan(ib.low):
            out.append(f"{a} vs {b}: not established (a group needs at least 2 runs with a {score})")
        elif ia.overlaps(ib):
            out.append(f"{a} vs {b}: {ia.mean:.2f} vs {ib.mean:.2f}: the 95 % intervals overlap; "
                       "the difference is not established")
        else:
            hi, lo = (a, b) if ia.mean > ib.mean else (b, a)
            out.append(f"{a} vs {b}: {ia.mean:.2f} vs {ib.mean:.2f}: {hi} is higher than {lo} "
                       "(the 95 % intervals do not overlap)")
    return out
