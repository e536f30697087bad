"""Plotly figures of the app: the trajectory, the probability bars, the confusion matrix, a blank figure.

The trajectory shows per class the statistic the answer card reports, the mean over the runs of the class
probabilities (``Trajectory.mean``, ``diffmic.uncertainty.answer_probabilities``), with the band of all
the runs around it (min–max), starting at the prior where the chain starts (t = T) and ending at the
card's numbers. The CSV download holds the same three per step (``Trajectory.to_csv``).
Figures stay light for streaming: at most ~250 points per line, one filled polygon per band.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from diffmic.trajectory import MAX_PLOT_POINTS, Trajectory

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
# System fonts only: they render offline and on every platform without downloading anything.
FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", '
    '"Liberation Sans", "DejaVu Sans", sans-serif'
)
FONT = dict(family=FONT_STACK, size=13)


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
        margin=dict(l=55, r=15, t=45 if title else 20, b=45),
        font=FONT,
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    layout.update(extra)
    return layout


def axis(title: str, **extra) -> dict:
    """A light-grid axis with a title."""
    return dict(title=dict(text=title), gridcolor="#e5e7eb", zeroline=False, linecolor="#9ca3af", **extra)


def legend_below() -> dict:
    """A horizontal legend under the plot, in the figure's own space (never over the axis title)."""
    return dict(orientation="h", yref="container", yanchor="bottom", y=0.01, x=0, font=dict(size=12))


def plotly_figure(traces: Sequence[dict], layout: dict) -> go.Figure:
    """A plotly figure of the dicts this module writes, built without plotly's per-property validation:
    it costs ~40 ms a figure, ten times the rest of a streamed frame. The dicts are checked with
    validation on by the tests (``tests/test_app_support.py``)."""
    return go.Figure(list(traces), layout, _validate=False)


def empty_figure(message: str, height: int = 340) -> go.Figure:
    """A blank figure with a centred message (before a run, or after the inputs changed)."""
    layout = base_layout("", height, xaxis=dict(visible=False), yaxis=dict(visible=False))
    layout["annotations"] = [dict(text=message, showarrow=False, font=dict(size=14, color="#6b7280"))]
    return plotly_figure([], layout)


BAND = "min–max"  # what the shaded band around each line is


def chain_summary(traj: Trajectory, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The card's statistic and the band around it at the steps ``idx``, each (steps, C): the mean over
    the runs, their minimum and their maximum (``Trajectory.mean``, ``low``, ``high``)."""
    return traj.mean[idx], traj.low[idx], traj.high[idx]


def trajectory_figure(
    traj: Trajectory,
    T: int,
    title: str = "",
    prior_label: str = "prior",
    labels: Sequence[str] | None = None,
    height: int = 380,
    each_run: bool = False,
    now: int | None = None,
    from_prior: bool = True,
    max_points: int = MAX_PLOT_POINTS,
) -> go.Figure:
    """Every class's probability against t, from the prior at t = T down to the answer at t = 0.

    Line: the mean over the runs (the answer card's statistic: the last point is the card's number);
    band: the range of the runs (min–max), named in the legend and on hover. ``labels`` are the names
    shown on hover (full names), in class order. ``each_run`` adds each run as a thin line, ``now`` marks a
    timestep with a dotted vertical line (a replay's frame), and ``from_prior=False`` starts the lines at
    the first step instead of at the prior (the diamonds still mark the prior at t = T). Each line has at
    most ``max_points`` points, the latest step always among them.
    """
    names = list(traj.class_names)
    labels = list(labels or names)
    idx = traj.plot_indices(max_points)
    x = traj.timesteps[idx].tolist()
    mean, low, high = chain_summary(traj, idx) if len(idx) else (np.zeros((0, len(names))),) * 3
    if from_prior or not len(idx):
        x = [T] + x
        start = traj.prior[None, :]
        mean, low, high = (np.concatenate([start, m]) for m in (mean, low, high))
    banded = traj.samples > 1 and len(x) > 1
    runs = f"mean of {traj.samples} runs" if traj.samples > 1 else "the run"
    traces: list[dict] = run_lines(traj, names, min(max_points, RUN_POINTS)) if each_run and len(idx) else []
    for c, name in enumerate(names):
        colour = class_colour(c)
        if banded:
            traces.append(
                dict(
                    type="scatter",
                    x=x + x[::-1],
                    y=np.round(np.concatenate([high[:, c], low[::-1, c]]), 4).tolist(),
                    fill="toself",
                    fillcolor=rgba(colour, 0.18),
                    line=dict(width=0),
                    hoverinfo="skip",
                    legendgroup=name,
                    showlegend=False,
                )
            )
        line = dict(
            type="scatter",
            x=x,
            y=np.round(mean[:, c], 4).tolist(),
            mode="lines",
            name=name,
            legendgroup=name,
            line=dict(color=colour, width=2.4),
            hovertemplate=f"{labels[c]}: %{{y:.2f}} ({runs}) at t = %{{x}}<extra></extra>",
        )
        if banded:
            line["customdata"] = np.round(np.stack([low[:, c], high[:, c]], 1), 4).tolist()
            line["hovertemplate"] = (
                f"{labels[c]}: %{{y:.2f}} ({runs}; {BAND} of the runs "
                "%{customdata[0]:.2f}–%{customdata[1]:.2f}) at t = %{x}<extra></extra>"
            )
        traces.append(line)
    if each_run and len(idx):  # a legend entry saying what the thin lines are
        traces.append(legend_entry(f"thin: each of the {traj.samples} runs", rgba("#6b7280", 0.6), 1))
    if banded:  # a legend entry saying what the shaded bands are
        traces.append(legend_entry(f"shaded: {BAND} of the {traj.samples} runs", rgba("#6b7280", 0.35), 10))
    traces.append(
        dict(
            type="scatter",
            x=[T] * len(names),
            y=np.round(traj.prior, 4).tolist(),
            mode="markers",
            name=f"{prior_label} (start, t = T)",
            marker=dict(
                symbol="diamond",
                size=11,
                color=[class_colour(c) for c in range(len(names))],
                line=dict(color="#111827", width=1.2),
            ),
            text=labels,
            hovertemplate=f"{prior_label} · %{{text}}: %{{y:.2f}}<extra></extra>",
        )
    )
    layout = base_layout(
        title,
        height,
        xaxis=axis("timestep t (from T down to 0)", range=[T * 1.03, -T * 0.01]),
        yaxis=axis("probability", range=[-0.02, 1.02]),
        legend=legend_below(),
        margin=dict(l=55, r=15, t=45 if title else 15, b=110),
        uirevision="trajectory",
        hovermode="closest",
    )
    if now is not None:
        layout["shapes"] = [now_line(now)]
        layout["annotations"] = [now_label(now, T)]
    return plotly_figure(traces, layout)


RUN_POINTS = 120  # per run line: the runs are context for the mean, drawn lighter and coarser


def run_lines(traj: Trajectory, names: Sequence[str], max_points: int = RUN_POINTS) -> list[dict]:
    """Each run's probability of each class as a thin line (grouped with its class in the legend)."""
    idx = traj.plot_indices(max_points)
    x = traj.timesteps[idx].tolist()
    probs = traj.probs[idx]  # (points, runs, C)
    lines = []
    for c, name in enumerate(names):
        for n in range(traj.samples):
            lines.append(
                dict(
                    type="scatter",
                    x=x,
                    y=np.round(probs[:, n, c], 3).tolist(),
                    mode="lines",
                    line=dict(color=rgba(class_colour(c), 0.45), width=0.8),
                    legendgroup=name,
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"{name}, run {n + 1}",
                )
            )
    return lines


def legend_entry(name: str, colour: str, width: float) -> dict:
    """A legend line that draws nothing (says what a kind of line or band is)."""
    return dict(
        type="scatter", x=[None], y=[None], mode="lines", name=name, line=dict(color=colour, width=width),
        hoverinfo="skip",
    )  # fmt: skip


def now_line(t: int) -> dict:
    """A dotted vertical line at timestep t, over the whole plot height."""
    return dict(
        type="line", xref="x", yref="paper", x0=t, x1=t, y0=0, y1=1,
        line=dict(color="#111827", width=1.2, dash="dot"),
    )  # fmt: skip


def now_label(t: int, T: int) -> dict:
    """``t = …`` written at the top of ``now_line``, on the side with room (the axis runs from T to 0)."""
    return dict(
        x=t, xref="x", y=1, yref="paper", yanchor="top", xanchor="left" if t > T / 2 else "right",
        text=f" t = {t} ", showarrow=False,
        font=dict(size=12, color="#111827"), bgcolor="rgba(255,255,255,0.8)",
    )  # fmt: skip


def band_note(samples: int) -> str:
    """What the lines and bands of ``trajectory_figure`` are, in one sentence."""
    if samples == 1:
        return "One run: the line is that run."
    return (
        f"Lines: the mean of the {samples} runs (what the answer gives); shaded: the range of the runs "
        f"({BAND})."
    )


def probability_bars(
    class_names: Sequence[str],
    probs: np.ndarray,
    prior: np.ndarray | None = None,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    title: str = "",
    labels: Sequence[str] | None = None,
    prior_label: str = "prior",
    height: int = 300,
) -> go.Figure:
    """Horizontal bars of the class probabilities (whiskers: ``low``–``high``), the prior as diamonds."""
    names = list(class_names)
    labels = list(labels or names)
    bar: dict = dict(
        type="bar",
        orientation="h",
        x=np.round(probs, 4).tolist(),
        y=names,
        marker=dict(color=[class_colour(c) for c in range(len(names))]),
        name="DiffMIC",
        customdata=labels,
        hovertemplate="%{customdata}: %{x:.2f}<extra></extra>",
    )
    if low is not None and high is not None:
        bar["error_x"] = dict(
            type="data",
            symmetric=False,
            array=np.round(np.maximum(high - probs, 0), 4).tolist(),
            arrayminus=np.round(np.maximum(probs - low, 0), 4).tolist(),
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
                customdata=labels,
                hovertemplate=f"{prior_label} · %{{customdata}}: %{{x:.2f}}<extra></extra>",
            )
        )
    layout = base_layout(
        title,
        height,
        xaxis=axis("probability", range=[0, 1.02]),
        yaxis=dict(autorange="reversed", automargin=True),
        legend=legend_below(),
        margin=dict(l=55, r=15, t=45 if title else 15, b=90),
        showlegend=prior is not None,
        uirevision="bars",
        bargap=0.3,
    )
    return plotly_figure(traces, layout)
