"""The Learn tab's animated figures besides the forward process: the model's reverse chain in label space,
and the noise schedule, each at one timestep t.

A ``Lesson`` holds what they draw (computed by ``diffmic.lesson``), kept between animation frames. The
reverse figure is drawn like the forward one (same axes, same markers) so that the two can be compared at
the same t: the forward process noises the true label towards the prior, the reverse chain starts from
the prior plus noise and denoises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go

from diffmic.lesson import ReverseChain, Schedule

from . import report
from .figure_style import axis, base_layout, class_colour, legend_below, plotly_figure, rgba
from .forward_figure import ForwardProcess, forward_figure

SCHEDULE_POINTS = 200  # per curve of the schedule figure


class LessonFigures(NamedTuple):
    """The three animated figures at one t, by name (the Learn tab's outputs of the same names)."""

    forward: go.Figure
    reverse: go.Figure
    schedule: go.Figure


@dataclass
class Lesson:
    """Everything the Learn tab animates, for one model, image and prior."""

    forward: ForwardProcess
    reverse: ReverseChain  # the DDPM chain centred on the lesson's prior
    schedule: Schedule
    truth: int | None  # the true class (None when unknown)

    @property
    def T(self) -> int:
        """Number of timesteps."""
        return self.forward.T

    def y_range(self) -> list[float]:
        """One y range for both label-space figures and every t."""
        lo, hi = self.forward.y_range()
        labels = self.reverse.labels
        return [min(lo, float(labels.min()) - 0.2), max(hi, float(labels.max()) + 0.2)]

    def figures(self, t: float | None) -> LessonFigures:
        """The forward, reverse and schedule figures at t."""
        y_range = self.y_range()
        return LessonFigures(
            forward=forward_figure(self.forward, t, y_range=y_range),
            reverse=reverse_figure(self, t, y_range),
            schedule=schedule_figure(self.schedule, self.forward.clamp(t)),
        )


def reverse_title(lesson: Lesson, t: int) -> str:
    """The reverse figure's title at t (the browser test reads the t in it)."""
    chain = lesson.reverse
    return f"Reverse ({chain.options.sampler.upper()}): t = {t}, {chain.options.samples} runs"


def reverse_figure(lesson: Lesson, t: float | None, y_range: list[float] | None = None) -> go.Figure:
    """The runs' label vectors y after the reverse step at t (dots), their mean (bars), the prior the chain
    is centred on, the true label, and on top the class probabilities at t (the mean over the runs of
    softmax(y / T), the statistic the answer reports)."""
    fp, chain = lesson.forward, lesson.reverse
    t = fp.clamp(t)
    i = chain.index_at(t)
    y = chain.labels[i]  # (N, C)
    names = list(fp.class_names)
    c = len(names)
    probs = chain.trajectory.mean[i]
    colours = [class_colour(k) for k in range(c)]
    jitter = np.random.default_rng(1).uniform(-0.22, 0.22, y.shape)  # fixed: each dot is one run throughout
    y_range = y_range or lesson.y_range()
    traces = [
        dict(
            type="bar",
            x=names,
            y=np.round(y.mean(0), 4).tolist(),
            marker=dict(color=[rgba(col, 0.45) for col in colours], line=dict(color=colours, width=1.5)),
            name="mean of the runs",
            customdata=fp.labels,
            hovertemplate="%{customdata}: mean %{y:.2f}<extra></extra>",
        ),
        dict(
            type="scatter",
            x=(np.arange(c)[None, :] + jitter).ravel().tolist(),
            y=np.round(y, 3).ravel().tolist(),
            mode="markers",
            marker=dict(size=7, color="rgba(17,24,39,0.55)"),
            name="each run's y",
            xaxis="x2",
            hoverinfo="skip",
        ),
    ]
    if lesson.truth is not None:
        traces.append(
            dict(
                type="scatter",
                x=names,
                y=fp.y0.tolist(),
                mode="markers",
                name="y₀ of the true label",
                marker=dict(symbol="circle-open", size=14, color="#111827", line=dict(width=2)),
            )
        )
    traces += [
        dict(
            type="scatter",
            x=names,
            y=np.round(chain.prior, 4).tolist(),
            mode="markers",
            name="prior (the chain's centre)",
            marker=dict(symbol="diamond", size=11, color="#F0E442", line=dict(color="#111827", width=1.2)),
        ),
        dict(
            type="scatter",
            x=names,
            y=[y_range[1] - 0.08 * (y_range[1] - y_range[0])] * c,
            mode="text",
            text=[report.percent(p) for p in probs],
            textfont=dict(size=13, color=colours),
            name="probability now (mean of the runs)",
            hoverinfo="skip",
        ),
    ]
    layout = base_layout(
        reverse_title(lesson, t),
        420,
        xaxis=axis("class", categoryorder="array", categoryarray=names),
        xaxis2=dict(overlaying="x", range=[-0.5, c - 0.5], visible=False),
        yaxis=axis("label-vector value y", range=y_range),
        legend=legend_below(),
        margin=dict(l=55, r=15, t=45, b=110),
        uirevision="reverse",
    )
    return plotly_figure(traces, layout)


def thin(T: int, points: int = SCHEDULE_POINTS) -> np.ndarray:
    """About ``points`` timesteps from 0 to T-1, both ends included."""
    return np.unique(np.linspace(0, T - 1, min(points, T)).round().astype(np.int64))


def schedule_figure(schedule: Schedule, t: int, height: int = 300) -> go.Figure:
    """ᾱ_t and the prior's weight 1 − √ᾱ_t (left axis) and β_t (right axis) over t, t marked."""
    idx = thin(schedule.T)
    x = idx.tolist()
    curves = (
        (f"ᾱ_t = {schedule.alpha_bar[t]:.3f}: the true label left", schedule.alpha_bar, "#0072B2", "y"),
        (
            f"1 − √ᾱ_t = {schedule.prior_weight[t]:.2f}: the prior's weight",
            schedule.prior_weight,
            "#D55E00",
            "y",
        ),
        (f"β_t = {schedule.beta[t]:.4f}: noise added (right axis)", schedule.beta, "#6b7280", "y2"),
    )
    traces = []
    for name, values, colour, yaxis in curves:
        traces.append(
            dict(
                type="scatter",
                x=x,
                y=np.round(values[idx], 5).tolist(),
                mode="lines",
                name=name,
                line=dict(color=colour, width=2, dash="dash" if yaxis == "y2" else "solid"),
                yaxis=yaxis,
                hovertemplate=f"{name.split(' = ')[0]} = %{{y:.4f}} at t = %{{x}}<extra></extra>",
            )
        )
        traces.append(
            dict(
                type="scatter",
                x=[t],
                y=[round(float(values[t]), 5)],
                mode="markers",
                marker=dict(size=10, color=colour, line=dict(color="white", width=1.5)),
                yaxis=yaxis,
                showlegend=False,
                hovertemplate=f"{name.split(' = ')[0]} = %{{y:.4f}} at t = %{{x}}<extra></extra>",
            )
        )
    layout = base_layout(
        f"Noise schedule at t = {t}",
        height,
        xaxis=axis("timestep t", range=[-0.01 * schedule.T, schedule.T * 1.01]),
        yaxis=axis("ᾱ_t, 1 − √ᾱ_t", range=[-0.02, 1.02]),
        yaxis2=dict(
            title=dict(text="β_t"),
            overlaying="y",
            side="right",
            range=[0, float(schedule.beta.max()) * 1.05],
            showgrid=False,
            zeroline=False,
        ),
        legend=legend_below(),
        margin=dict(l=55, r=55, t=45, b=100),
        shapes=[
            dict(
                type="line",
                xref="x",
                yref="paper",
                x0=t,
                x1=t,
                y0=0,
                y1=1,
                line=dict(color="#111827", width=1.2, dash="dot"),
            )
        ],  # fmt: skip
        uirevision="schedule",
    )
    return plotly_figure(traces, layout)
