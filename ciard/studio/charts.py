"""Plotly figure builders for the pages: live training curves and run overlays.

Each builder takes DataFrames and returns a ``go.Figure`` (or None when there is nothing to
draw), so pages only place them. Long runs are thinned to at most ``MAX_POINTS`` per trace
(the last point is always kept) so a refresh stays cheap. ``uirevision`` keeps the user's zoom
and hidden traces across live refreshes.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd
import plotly.graph_objects as go

from .metrics import ACCURACY_KEYS

MAX_POINTS = 1500
HEIGHT = 330
#: Okabe-Ito colours (colour-blind safe), none of them the right/wrong green and vermillion of
#: the prediction charts (:mod:`ciard.studio.probe_charts`)
MODEL_COLORS = {"student": "#CC79A7", "robust teacher": "#0072B2", "clean teacher": "#E69F00"}
LABELS = {
    "loss": "total", "loss_adv": "adversarial KD", "loss_nat": "natural KD", "loss_push": "push",
    "loss_teacher": "teacher (ITT)", "loss_ce": "cross-entropy", "tau_adv": "τ adv", "tau_nat": "τ nat",
    "w_adv": "w adv", "w_nat": "w nat", "lr": "student lr", "teacher_lr": "teacher lr (ITT)",
    "loss_kd": "KD", "loss_kd_adv": "adversarial KD", "loss_kd_nat": "natural KD",
    "loss_pcr": "consistency (DGAD)", "loss_align": "input-gradient alignment (KDIGA)",
    "loss_student": "student (PeerAiD)", "loss_peer": "peer (PeerAiD)", "loss_kd_peer": "KD from the peer",
}


def thin(df: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row so at most ``max_points`` remain, always keeping the last one."""
    n = len(df)
    if n <= max_points:
        return df
    k = -(-n // max_points)
    idx = list(range(0, n, k))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return df.iloc[idx]


def _layout(fig: go.Figure, title: str, x: str, y: str, revision: str) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14)), height=HEIGHT,
        margin=dict(l=10, r=10, t=36, b=10), xaxis_title=x, yaxis_title=y,
        legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0.0),
        uirevision=revision, hovermode="x unified",
    )
    return fig


def step_figure(steps: pd.DataFrame, keys: Iterable[str], title: str, y: str, *,
                x: str = "step", revision: str = "", secondary: Iterable[str] = ()) -> go.Figure | None:
    """Lines of the given per-step keys (those present); None if none is."""
    keys = [k for k in keys if k in steps and steps[k].notna().any()]
    if steps.empty or not keys or x not in steps:
        return None
    data = thin(steps)
    secondary = [k for k in secondary if k in keys]
    fig = go.Figure()
    for k in keys:
        one = data[k].notna().sum() < 2          # a single point draws no line: show a marker
        fig.add_trace(go.Scatter(x=data[x], y=data[k], mode="lines+markers" if one else "lines", name=LABELS.get(k, k),
                                 yaxis="y2" if k in secondary else "y"))
    _layout(fig, title, x, y, revision)
    if secondary:
        fig.update_layout(yaxis2=dict(overlaying="y", side="right", showgrid=False,
                                      title=", ".join(LABELS.get(k, k) for k in secondary),
                                      exponentformat="e", rangemode="tozero"))
    return fig


def loss_figure(steps: pd.DataFrame, *, x: str = "step", revision: str = "") -> go.Figure | None:
    keys = ["loss"] + sorted(k for k in steps.columns if k.startswith("loss") and k != "loss")
    return step_figure(steps, keys, "Loss and its components", "loss", x=x, revision=revision)


def temperature_figure(steps: pd.DataFrame, *, x: str = "step", revision: str = "") -> go.Figure | None:
    return step_figure(steps, ["tau_adv", "tau_nat"], "Distillation temperatures", "τ", x=x, revision=revision)


def weight_figure(steps: pd.DataFrame, *, x: str = "step", revision: str = "") -> go.Figure | None:
    return step_figure(steps, ["w_adv", "w_nat"], "KD weights", "weight", x=x, revision=revision)


def lr_figure(steps: pd.DataFrame, *, x: str = "step", revision: str = "") -> go.Figure | None:
    fig = step_figure(steps, ["lr", "teacher_lr"], "Learning rates", "student lr", x=x,
                      revision=revision, secondary=["teacher_lr"])
    if fig is not None and "lr" in steps and steps["lr"].notna().any():   # from 0 to just above the peak
        fig.update_yaxes(range=[0, 1.08 * float(steps["lr"].max())], exponentformat="e")
    return fig


def accuracy_figure(epochs: pd.DataFrame, *, revision: str = "") -> go.Figure | None:
    """Validation accuracy per epoch: clean (solid) and PGD (dashed) for each model present."""
    keys = [(k, model, attack) for k, model, attack in ACCURACY_KEYS
            if k in epochs and epochs[k].notna().any()]
    if epochs.empty or not keys:
        return None
    fig = go.Figure()
    named: set[str] = set()
    for k, model, attack in keys:
        # one legend entry per model (clicking it hides both of its lines); the style says which
        fig.add_trace(go.Scatter(
            x=epochs["epoch"], y=100 * epochs[k], mode="lines+markers", name=model, legendgroup=model,
            showlegend=model not in named, hovertemplate=f"{model} {attack}: %{{y:.1f}}%<extra></extra>",
            line=dict(color=MODEL_COLORS[model], dash="solid" if attack == "clean" else "dash")))
        named.add(model)
    _layout(fig, "Validation accuracy", "epoch", "% (solid clean, dashed PGD)", revision)
    fig.update_layout(legend_tracegroupgap=0)
    fig.update_yaxes(range=[0, 100])
    return fig


def overlay_figure(curves: dict[str, pd.DataFrame], metric: str, x: str) -> go.Figure | None:
    """One trace per run of ``metric`` against ``x`` (step or epoch)."""
    fig = go.Figure()
    for name, df in curves.items():
        if df.empty or metric not in df:
            continue
        d = thin(df.dropna(subset=[x, metric]))
        per_epoch = d[x].nunique() < 60
        fig.add_trace(go.Scatter(x=d[x], y=d[metric], name=name,
                                 mode="lines+markers" if per_epoch else "lines"))
    if not fig.data:
        return None
    _layout(fig, metric, x, metric, revision=metric)
    fig.update_layout(height=380)
    return fig
