"""Plotly figures of the probing pages (no Streamlit): top-5 bars, attribution grids, PCA, KL."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.colors as px_colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .charts import MODEL_COLORS

#: Okabe-Ito bluish green and vermillion (colour-blind safe, and not a model's colour), grey, sky blue
RIGHT, WRONG, OTHER, TOP = "#009E73", "#D55E00", "#9aa5b1", "#56B4E9"
#: Inferno, but starting at pure black: Streamlit's frontend treats "#000001" .. "#000010" as
#: placeholders for its theme colours and swaps them (even with theme=None), so Inferno's own
#: first stop, "#000004", would turn lavender and zero attribution would look bright
INFERNO = ["#000000", *px_colors.sequential.Inferno[1:]]
CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"]


def topk_figure(clean: np.ndarray, adv: np.ndarray, classes: Sequence[str], label: int | None,
                title: str, k: int = 5) -> go.Figure:
    """Top-k probabilities on clean (left) and adversarial (right) input of one model.

    The true class is green, a wrong top-1 is red; each panel's title says right or wrong.
    """
    def panel(p: np.ndarray) -> tuple[list[str], list[float], list[str], str]:
        order = np.argsort(-p)[:k][::-1]
        if label is not None and label not in order:   # the true class is always shown, even at ~0 %
            order = np.concatenate([[label], order[1:]])
        top_color = WRONG if label is not None else TOP  # no true label (an upload): top-1 is not "wrong"
        colors = [RIGHT if label is not None and i == label else (top_color if i == order[-1] else OTHER)
                  for i in order]
        top = int(order[-1])
        mark = "" if label is None else (" ✓ right" if top == label else " ✗ wrong")
        return [classes[i] for i in order], [float(p[i]) for i in order], colors, f"{classes[top]}{mark}"

    # two-line subtitles: "clean" over its verdict, so the two panels' titles never run together
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.22,
                        subplot_titles=[f"<b>clean</b><br>{panel(clean)[3]}", f"<b>adversarial</b><br>{panel(adv)[3]}"])
    for col, p in ((1, clean), (2, adv)):
        names, vals, colors, _ = panel(p)
        fig.add_trace(go.Bar(x=vals, y=names, orientation="h", marker_color=colors,
                             text=[f"{100 * v:.0f}%" if v >= 0.005 else "≈0%" for v in vals], textposition="auto",
                             hovertemplate="%{y}: %{x:.1%}<extra></extra>", showlegend=False), row=1, col=col)
        fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=col)
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), height=250,
                      margin=dict(l=10, r=10, t=78, b=10))
    fig.update_annotations(font_size=12)
    return fig


def accuracy_eps_figure(eps: Sequence[float], acc: dict[str, Sequence[float]], title: str) -> go.Figure:
    fig = go.Figure()
    for name, ys in acc.items():
        fig.add_trace(go.Scatter(x=[round(255 * e) for e in eps], y=[100 * a for a in ys], mode="lines+markers",
                                 name=name, line=dict(color=MODEL_COLORS.get(name))))
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), height=330,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="eps (n/255)", xaxis_tickmode="array",
                      xaxis_tickvals=[round(255 * e) for e in eps], xaxis_ticktext=[f"{round(255 * e)}/255" for e in eps],
                      yaxis_title="accuracy %", yaxis_range=[0, 100], hovermode="x unified",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def scaled_maps(maps: dict[str, tuple[np.ndarray, np.ndarray]], shared: bool = False
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """The maps on the scale they are drawn with, and that scale's top.

    Per model (the default): each model's pair is divided by its own 99th percentile, so every
    model's pattern is visible (a strongly attributing clean teacher, max 1.6-1.8, would turn every
    other map black under one scale) and clean and adversarial of one model still compare.
    Shared: raw values, one scale up to the 99th percentile of every map together.
    """
    if shared:
        allv = np.concatenate([np.ravel(m) for pair in maps.values() for m in pair]) if maps else np.zeros(1)
        return maps, float(np.percentile(allv, 99)) or 1.0
    out = {}
    for name, pair in maps.items():
        top = float(np.percentile(np.concatenate([np.ravel(m) for m in pair]), 99)) or 1.0
        out[name] = tuple(np.clip(m / top, 0, 1) for m in pair)
    return out, 1.0


def attribution_grid(maps: dict[str, tuple[np.ndarray, np.ndarray]], titles: Sequence[str] = ("clean", "adversarial"),
                     height_per_row: int = 190, shared: bool = False,
                     images: Sequence[np.ndarray] | None = None, opacity: float = 1.0) -> go.Figure:
    """Rows: models; columns: clean and adversarial maps (:func:`scaled_maps` says the scale).

    ``images``: the clean and adversarial input (``H x W x 3`` uint8) drawn under the maps, which
    are then ``opacity`` opaque. No axes, ticks or grid: the maps are pictures.
    """
    names = list(maps)
    maps, zmax = scaled_maps(maps, shared)
    fig = make_subplots(rows=len(names), cols=2, horizontal_spacing=0.03, vertical_spacing=0.06,
                        subplot_titles=[f"{n}: {t}" for n in names for t in titles])
    for r, n in enumerate(names, start=1):
        for c, m in enumerate(maps[n], start=1):
            if images is not None:
                fig.add_trace(go.Image(z=images[c - 1], hoverinfo="skip"), row=r, col=c)
            fig.add_trace(go.Heatmap(z=m, coloraxis="coloraxis", opacity=opacity if images is not None else 1.0,
                                     hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>"), row=r, col=c)
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{(r - 1) * 2 + c}", row=r, col=c)
    fig.update_xaxes(visible=False, showgrid=False, zeroline=False)
    fig.update_yaxes(visible=False, showgrid=False, zeroline=False)
    title = "attribution" if shared else "relative<br>attribution"
    fig.update_layout(height=height_per_row * len(names) + 40, margin=dict(l=10, r=10, t=40, b=10),
                      plot_bgcolor="rgba(0,0,0,0)",
                      coloraxis=dict(colorscale=INFERNO, cmin=0, cmax=zmax,
                                     colorbar=dict(title=title, len=0.6, thickness=12, x=1.0, xpad=4)))
    fig.update_annotations(font_size=12)
    return fig


def pca_figure(xy_clean: np.ndarray, xy_adv: np.ndarray, labels: np.ndarray, classes: Sequence[str],
               fooled: np.ndarray, hover: Sequence[str], title: str) -> go.Figure:
    """Clean (circles) and adversarial (crosses) samples of one student, coloured by class.

    Adversarial samples on which the clean teacher is fooled get a black outline.
    """
    fig = go.Figure()
    for c, name in enumerate(classes):
        sel = labels == c
        if not sel.any():
            continue
        color = CLASS_COLORS[c % len(CLASS_COLORS)]
        fig.add_trace(go.Scatter(x=xy_clean[sel, 0], y=xy_clean[sel, 1], mode="markers", name=name,
                                 legendgroup=name, marker=dict(color=color, size=6, opacity=0.45),
                                 text=[hover[i] + " (clean)" for i in np.flatnonzero(sel)],
                                 hovertemplate="%{text}<extra></extra>"))
        fig.add_trace(go.Scatter(x=xy_adv[sel, 0], y=xy_adv[sel, 1], mode="markers", name=name, legendgroup=name,
                                 showlegend=False,
                                 marker=dict(color=color, size=8, symbol="x",
                                             line=dict(width=[1.5 if f else 0 for f in fooled[sel]], color="black")),
                                 text=[hover[i] + " (adversarial)" for i in np.flatnonzero(sel)],
                                 hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), height=400,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="PC 1", yaxis_title="PC 2",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def kl_histogram(kls: dict[str, np.ndarray], title: str) -> go.Figure:
    fig = go.Figure()
    for name, v in kls.items():
        fig.add_trace(go.Histogram(x=v, name=name, opacity=0.6, nbinsx=30))
    fig.update_layout(barmode="overlay", title=dict(text=title, x=0.01, font=dict(size=14)), height=320,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="KL(clean teacher ‖ student) on x'",
                      yaxis_title="samples", legend=dict(orientation="h", y=-0.3))
    return fig


def schedule_figure(progress: Sequence[float], series: dict[str, Sequence[float]], secondary: Sequence[str] = ()
                    ) -> go.Figure:
    fig = go.Figure()
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=list(progress), y=list(ys), mode="lines", name=name,
                                 yaxis="y2" if name in secondary else "y"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="training progress",
                      xaxis_tickformat=".0%", yaxis_title="student lr", hovermode="x unified",
                      yaxis_rangemode="tozero", yaxis_exponentformat="e",
                      legend=dict(orientation="h", y=-0.3))
    if secondary:
        fig.update_layout(yaxis2=dict(overlaying="y", side="right", showgrid=False, title=", ".join(secondary),
                                      exponentformat="e"))
    return fig
