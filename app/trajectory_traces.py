"""The pieces of ``figures.trajectory_figure``: per class a band (the range of the runs) and a line (their
mean), each run as a thin line, the prior's diamonds at t = T, legend entries saying what the lines and
bands are, a marked timestep (a replay's frame) and the layout."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffmic.trajectory import Trajectory

from .figure_style import axis, base_layout, class_colour, legend_below, rgba

BAND = "min–max"  # what the shaded band around each line is


def band_trace(x: list[int], low: np.ndarray, high: np.ndarray, colour: str, name: str) -> dict:
    """One class's band, the range of the runs, as one filled polygon (grouped with its line)."""
    return dict(
        type="scatter",
        x=x + x[::-1],
        y=np.round(np.concatenate([high, low[::-1]]), 4).tolist(),
        fill="toself",
        fillcolor=rgba(colour, 0.18),
        line=dict(width=0),
        hoverinfo="skip",
        legendgroup=name,
        showlegend=False,
    )


def mean_line(
    x: list[int],
    mean: np.ndarray,
    colour: str,
    name: str,
    label: str,
    runs: str,
    band: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """One class's line, the mean over the runs; on hover its full name (``label``), what the line is
    (``runs``) and, with ``band`` (low, high), the range of the runs."""
    line = dict(
        type="scatter",
        x=x,
        y=np.round(mean, 4).tolist(),
        mode="lines",
        name=name,
        legendgroup=name,
        line=dict(color=colour, width=2.4),
        hovertemplate=f"{label}: %{{y:.2f}} ({runs}) at t = %{{x}}<extra></extra>",
    )
    if band is not None:
        line["customdata"] = np.round(np.stack(band, 1), 4).tolist()
        line["hovertemplate"] = (
            f"{label}: %{{y:.2f}} ({runs}; {BAND} of the runs "
            "%{customdata[0]:.2f}–%{customdata[1]:.2f}) at t = %{x}<extra></extra>"
        )
    return line


def prior_markers(prior: np.ndarray, T: int, labels: Sequence[str], prior_label: str) -> dict:
    """The prior, where the chain starts, as a diamond per class at t = T."""
    return dict(
        type="scatter",
        x=[T] * len(prior),
        y=np.round(prior, 4).tolist(),
        mode="markers",
        name=f"{prior_label} (start, t = T)",
        marker=dict(
            symbol="diamond",
            size=11,
            color=[class_colour(c) for c in range(len(prior))],
            line=dict(color="#111827", width=1.2),
        ),
        text=list(labels),
        hovertemplate=f"{prior_label} · %{{text}}: %{{y:.2f}}<extra></extra>",
    )


def trajectory_layout(title: str, height: int, T: int, now: int | None = None) -> dict:
    """The trajectory's axes (t from T down to 0, probability 0 to 1) and legend; ``now`` marked."""
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
    return layout


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
