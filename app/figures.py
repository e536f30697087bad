"""Plotly figures of the app: the trajectory (its pieces: ``trajectory_traces``), the probability bars, a
blank figure; their look is ``figure_style``'s.

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

from .figure_style import axis, base_layout, class_colour, legend_below, plotly_figure, rgba
from .trajectory_traces import (
    BAND,
    RUN_POINTS,
    band_trace,
    legend_entry,
    mean_line,
    prior_markers,
    run_lines,
    trajectory_layout,
)


def empty_figure(message: str, height: int = 340) -> go.Figure:
    """A blank figure with a centred message (before a run, or after the inputs changed)."""
    layout = base_layout("", height, xaxis=dict(visible=False), yaxis=dict(visible=False))
    layout["annotations"] = [dict(text=message, showarrow=False, font=dict(size=14, color="#6b7280"))]
    return plotly_figure([], layout)


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
    x, mean, low, high = plotted_summary(traj, T, idx, from_prior)
    banded = traj.samples > 1 and len(x) > 1
    runs = f"mean of {traj.samples} runs" if traj.samples > 1 else "the run"
    traces: list[dict] = run_lines(traj, names, min(max_points, RUN_POINTS)) if each_run and len(idx) else []
    for c, name in enumerate(names):
        colour = class_colour(c)
        if banded:
            traces.append(band_trace(x, low[:, c], high[:, c], colour, name))
        band = (low[:, c], high[:, c]) if banded else None
        traces.append(mean_line(x, mean[:, c], colour, name, labels[c], runs, band))
    if each_run and len(idx):  # a legend entry saying what the thin lines are
        traces.append(legend_entry(f"thin: each of the {traj.samples} runs", rgba("#6b7280", 0.6), 1))
    if banded:  # a legend entry saying what the shaded bands are
        traces.append(legend_entry(f"shaded: {BAND} of the {traj.samples} runs", rgba("#6b7280", 0.35), 10))
    traces.append(prior_markers(traj.prior, T, labels, prior_label))
    return plotly_figure(traces, trajectory_layout(title, height, T, now))


def plotted_summary(
    traj: Trajectory, T: int, idx: np.ndarray, from_prior: bool
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The timesteps and the mean, low and high, each (points, C), that ``trajectory_figure`` draws: those
    of the steps ``idx``, after the prior at t = T when ``from_prior`` (or when no step is done yet)."""
    x = traj.timesteps[idx].tolist()
    mean, low, high = chain_summary(traj, idx) if len(idx) else (np.zeros((0, len(traj.class_names))),) * 3
    if from_prior or not len(idx):
        x = [T] + x
        start = traj.prior[None, :]
        mean, low, high = (np.concatenate([start, m]) for m in (mean, low, high))
    return x, mean, low, high


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
