"""Plotly figures of the Playground: four models' decision regions, points, eps-boxes, attacks.

``regions_figure`` draws one panel per model (clean teacher, robust teacher, the chosen
student, its twin) at one training snapshot: the predicted class over the plane as a
translucent heatmap, the training points coloured by label, the push loss's mask (training
points whose adversarial version fools the clean teacher) ringed in black on the student
panels and, for a selected point, its eps-box, and in each panel the white-box PGD point
against that panel's model with an arrow from the clean point (red when it fools that model).
Each point's hover text names the models its own PGD points fool. The loss and temperature
charts are the Train page's (:mod:`ciard.studio.charts`).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..playground import ROLES, PlaygroundResult

#: class colours (points) and their pale versions (regions), up to 4 classes
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
REGION_COLORS = ("#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5")
HEIGHT = 380


def _discrete_scale(k: int) -> list[list]:
    """A colorscale mapping integer z in [0, k-1] to REGION_COLORS in flat bands."""
    scale = []
    for c in range(k):
        scale += [[c / k, REGION_COLORS[c]], [(c + 1) / k, REGION_COLORS[c]]]
    return scale


def _hover(result: PlaygroundResult, frame: int) -> list[str]:
    labels = result.settings.role_labels()
    y = result.data.y_train.numpy()
    texts = []
    for i in range(len(y)):
        fooled = result.fooled_by(frame, i)
        who = ", ".join(labels[r] for r in fooled) if fooled else "none of the four"
        texts.append(f"point {i}, class {y[i]}<br>its PGD point (eps box) fools: {who}")
    return texts


def regions_figure(result: PlaygroundResult, frame: int, selected: int | None = None) -> go.Figure:
    """The four panels at snapshot ``frame``; ``selected``: a training point's index, or None."""
    s = result.settings
    labels = s.role_labels()
    k = result.data.num_classes
    x = result.data.x_train.numpy()
    y = result.data.y_train.numpy()
    fig = make_subplots(rows=1, cols=len(ROLES), subplot_titles=[labels[r] for r in ROLES],
                        horizontal_spacing=0.025, shared_yaxes=True)
    hover = _hover(result, frame)
    for col, role in enumerate(ROLES, start=1):
        snap = result.snapshots[role][frame]
        fig.add_trace(go.Heatmap(x=result.grid_x, y=result.grid_y, z=snap.region, zmin=-0.5, zmax=k - 0.5,
                                 colorscale=_discrete_scale(k), showscale=False, hoverinfo="skip",
                                 opacity=0.75, name=f"{role} regions"), row=1, col=col)
        for c in range(k):
            idx = np.flatnonzero(y == c)
            fig.add_trace(go.Scatter(
                x=x[idx, 0], y=x[idx, 1], mode="markers", name=f"class {c}", legendgroup=f"class {c}",
                showlegend=col == 1, customdata=idx, hovertext=[hover[i] for i in idx],
                hovertemplate="%{hovertext}<extra></extra>",
                marker=dict(size=6, color=CLASS_COLORS[c], line=dict(width=0.5, color="white"))),
                row=1, col=col)
        if snap.mask is not None and snap.mask.any():
            m = np.flatnonzero(snap.mask)
            fig.add_trace(go.Scatter(
                x=x[m, 0], y=x[m, 1], mode="markers", name="push mask: clean teacher fooled",
                legendgroup="mask", showlegend=role == "student", customdata=m, hoverinfo="skip",
                marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(width=1.6, color="black"))),
                row=1, col=col)
        if selected is not None:
            _selected(fig, result, frame, role, col, int(selected))
    x0, x1, y0, y1 = result.data.bounds()
    fig.update_xaxes(range=[x0, x1], showgrid=False, zeroline=False, constrain="domain")
    # equal scales: the y axis keeps its range and gives up height (not the other way round, which
    # labelled empty space above and below the regions); the figure is about as tall as a panel
    # of a wide page needs (a panel is ~320 px wide at 1,400 px)
    fig.update_yaxes(range=[y0, y1], showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1,
                     constrain="domain")
    height = int(min(HEIGHT + 20, max(260, 320 * (y1 - y0) / max(x1 - x0, 1e-9) + 120)))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=64, b=10), clickmode="event+select",
                      legend=dict(orientation="h", yanchor="top", y=-0.04, x=0.0),
                      title=dict(text=f"Decision regions at {result.frames[frame]}", x=0.01, y=0.98, yanchor="top",
                                 font=dict(size=14)))
    return fig


def _selected(fig: go.Figure, result: PlaygroundResult, frame: int, role: str, col: int, i: int) -> None:
    """Point i's eps-box, its PGD point against this panel's model and the arrow to it."""
    eps = result.settings.eps
    px, py = (float(v) for v in result.data.x_train[i])
    snap = result.snapshots[role][frame]
    ax, ay = (float(v) for v in snap.adv[i])
    fooled = bool(snap.fooled[i])
    axis = "" if col == 1 else str(col)
    fig.add_shape(type="rect", x0=px - eps, x1=px + eps, y0=py - eps, y1=py + eps,
                  xref=f"x{axis}", yref=f"y{axis}", line=dict(color="black", width=1.5, dash="dot"))
    fig.add_annotation(x=ax, y=ay, ax=px, ay=py, xref=f"x{axis}", yref=f"y{axis}", axref=f"x{axis}",
                       ayref=f"y{axis}", showarrow=True, arrowhead=2, arrowwidth=1.8, text="",
                       arrowcolor="#d62728" if fooled else "#333333")
    fig.add_trace(go.Scatter(
        x=[ax], y=[ay], mode="markers", showlegend=False, name="adversarial point",
        hovertemplate=f"PGD point against this model: {'fools it' if fooled else 'does not fool it'}<extra></extra>",
        marker=dict(symbol="star", size=14, color="#d62728" if fooled else "white",
                    line=dict(width=1.2, color="black"))), row=1, col=col)
