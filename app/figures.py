"""Plotly figures of the app: the trajectory, the probability bars, the confusion matrix, the forward process.

Figures are kept light for streaming: at most ~250 points per line, the stochastic samples as one
min–max band per class (a single filled polygon), and no per-sample traces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .trajectory import Trajectory

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FONT = dict(family="Inter, system-ui, sans-serif", size=13)


def class_colour(i: int) -> str:
    """The colour of class i (cycles through the palette)."""
    return PALETTE[i % len(PALETTE)]


def rgba(hex_colour: str, alpha: float) -> str:
    """``#rrggbb`` with an opacity, as a CSS rgba() colour."""
    r, g, b = (int(hex_colour[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def base_layout(title: str, height: int, **extra) -> dict:
    """The common plotly layout (title, size, margins, font, white background); ``extra`` overrides it."""
    layout = dict(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
        height=height,
        margin=dict(l=55, r=15, t=45, b=45),
        font=FONT,
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    layout.update(extra)
    return layout


def axis(title: str, **extra) -> dict:
    """A light-grid axis with a title."""
    return dict(title=dict(text=title), gridcolor="#e5e7eb", zeroline=False, linecolor="#9ca3af", **extra)


def empty_figure(message: str, height: int = 340) -> go.Figure:
    """A blank figure with a centred message (before a run)."""
    layout = base_layout("", height, xaxis=dict(visible=False), yaxis=dict(visible=False))
    layout["annotations"] = [dict(text=message, showarrow=False, font=dict(size=14, color="#6b7280"))]
    return go.Figure(layout=layout)


def trajectory_figure(
    traj: Trajectory, t_max: int, title: str = "", prior_label: str = "fused prior", height: int = 360
) -> go.Figure:
    """Every class's probability against the timestep, with the sample band and the prior at t = T."""
    idx = traj.plot_indices()
    x = traj.timesteps[idx].tolist()
    mean, low, high = traj.mean[idx], traj.low[idx], traj.high[idx]
    traces: list[dict] = []
    for c, name in enumerate(traj.class_names):
        colour = class_colour(c)
        if traj.samples > 1 and x:
            traces.append(
                dict(
                    type="scatter",
                    x=x + x[::-1],
                    y=np.round(np.concatenate([high[:, c], low[::-1, c]]), 4).tolist(),
                    fill="toself",
                    fillcolor=rgba(colour, 0.14),
                    line=dict(width=0),
                    hoverinfo="skip",
                    legendgroup=name,
                    showlegend=False,
                )
            )
        traces.append(
            dict(
                type="scatter",
                x=x,
                y=np.round(mean[:, c], 4).tolist(),
                mode="lines",
                name=name,
                legendgroup=name,
                line=dict(color=colour, width=2.2),
                hovertemplate=f"{name}: %{{y:.3f}} at t=%{{x}}<extra></extra>",
            )
        )
    traces.append(
        dict(
            type="scatter",
            x=[t_max] * len(traj.class_names),
            y=np.round(traj.prior, 4).tolist(),
            mode="markers",
            name=prior_label,
            marker=dict(
                symbol="diamond",
                size=11,
                color=[class_colour(c) for c in range(len(traj.class_names))],
                line=dict(color="#111827", width=1.2),
            ),
            text=list(traj.class_names),
            hovertemplate=f"{prior_label} · %{{text}}: %{{y:.3f}}<extra></extra>",
        )
    )
    band = f"shaded: min–max over {traj.samples} samples · " if traj.samples > 1 else ""
    layout = base_layout(
        title or "Class probabilities while the label is denoised",
        height,
        xaxis=axis("timestep t (from T down to 0)", range=[t_max * 1.03 + 1, -t_max * 0.01]),
        yaxis=axis("probability", range=[-0.02, 1.02]),
        legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, font=dict(size=12)),
        margin=dict(l=55, r=15, t=62, b=105),
        uirevision="trajectory",
        hovermode="closest",
    )
    subtitle = f"{band}◆ {prior_label} at t = T"
    layout["title"]["subtitle"] = dict(text=subtitle, font=dict(size=12, color="#6b7280"))
    return go.Figure(traces, layout)


def probability_bars(
    class_names: Sequence[str],
    probs: np.ndarray,
    prior: np.ndarray | None = None,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    title: str = "Current probabilities",
    prior_label: str = "fused prior",
    height: int = 360,
) -> go.Figure:
    """Horizontal bars of the class probabilities (min–max whiskers over samples), the prior as diamonds."""
    names = list(class_names)
    bar: dict = dict(
        type="bar",
        orientation="h",
        x=np.round(probs, 4).tolist(),
        y=names,
        marker=dict(color=[class_colour(c) for c in range(len(names))]),
        name="DiffMIC",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    )
    if low is not None and high is not None:
        bar["error_x"] = dict(
            type="data",
            symmetric=False,
            array=np.round(high - probs, 4).tolist(),
            arrayminus=np.round(probs - low, 4).tolist(),
            color="#374151",
            thickness=1.2,
            width=4,
        )
    traces = [bar]
    if prior is not None:
        traces.append(
            dict(
                type="scatter",
                x=np.round(prior, 4).tolist(),
                y=names,
                mode="markers",
                name=prior_label,
                marker=dict(symbol="diamond", size=11, color="white", line=dict(color="#111827", width=1.5)),
                hovertemplate=f"{prior_label} · %{{y}}: %{{x:.3f}}<extra></extra>",
            )
        )
    layout = base_layout(
        title,
        height,
        xaxis=axis("probability", range=[0, 1.02]),
        yaxis=dict(autorange="reversed", automargin=True),
        legend=dict(orientation="h", yanchor="top", y=-0.3, x=0),
        margin=dict(l=55, r=15, t=45, b=105),
        showlegend=prior is not None,
        uirevision="bars",
        bargap=0.3,
    )
    return go.Figure(traces, layout)


def confusion_figure(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], height: int = 420
) -> go.Figure:
    """Confusion-matrix heat map (rows: true class, columns: predicted class) with the counts written in."""
    z = np.asarray(matrix, dtype=float)
    names = list(class_names)
    trace = dict(
        type="heatmap",
        z=z.tolist(),
        x=names,
        y=names,
        colorscale="Blues",
        text=z.astype(int).tolist(),
        texttemplate="%{text}",
        hovertemplate="true %{y} → predicted %{x}: %{z:.0f}<extra></extra>",
        showscale=False,
    )
    layout = base_layout(
        "Confusion matrix",
        height,
        xaxis=axis("predicted class", side="bottom"),
        yaxis=axis("true class", autorange="reversed"),
    )
    return go.Figure([trace], layout)
