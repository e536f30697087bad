"""The Learn tab's forward-process figure: q(y_t | y0, prior) at one timestep t.

The animation is driven by the server (a slider and a timer send one figure per frame): Gradio's plot
component hands plotly the data and layout only, so plotly's own frames never reach the browser. No
``layout.transition`` either: plotly's animated redraw reads the old figure's axes, and the placeholder
shown before the first lesson has none of this figure's (``TypeError: … reading 'range'`` in the console).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from .figure_style import axis, base_layout, class_colour, legend_below, plotly_figure, rgba


@dataclass
class ForwardProcess:
    """q(y_t | y0, prior) at every t = 0 … T-1 for one label: what the figure draws, kept between frames."""

    class_names: list[str]
    labels: list[str]  # full names, for hovering
    y0: np.ndarray  # (C,) one-hot label
    prior: np.ndarray  # (C,) the prior mean (the limit at t = T)
    mean: np.ndarray  # (T, C)
    std: np.ndarray  # (T,)
    draws: np.ndarray  # (T, D, C) draws of y_t with the same noise at every t
    alphas_bar: np.ndarray  # (T,)
    frames: np.ndarray  # the timesteps Play steps through, increasing

    @property
    def T(self) -> int:
        """Number of timesteps."""
        return len(self.std)

    def clamp(self, t: float | None) -> int:
        """A valid timestep near t."""
        return int(min(max(round(t or 0), 0), self.T - 1))

    def next_frame(self, t: float | None) -> int | None:
        """The first animation frame after t, or None at the end."""
        later = self.frames[self.frames > self.clamp(t)]
        return int(later[0]) if len(later) else None

    def previous_frame(self, t: float | None) -> int | None:
        """The last animation frame before t (playing the reverse process), or None at t = 0."""
        earlier = self.frames[self.frames < self.clamp(t)]
        return int(earlier[-1]) if len(earlier) else None

    def y_range(self) -> list[float]:
        """One y range for every t, so the axes stay still while the animation plays (0 and 1 included)."""
        lo = float(min(self.draws.min(), (self.mean - self.std[:, None]).min(), 0.0)) - 0.2
        hi = float(max(self.draws.max(), (self.mean + self.std[:, None]).max(), 1.0)) + 0.2
        return [lo, hi]


def frame_timesteps(T: int, frames: int = 40) -> np.ndarray:
    """About ``frames`` timesteps from 0 to T-1, denser at small t where the label changes fastest."""
    ts = np.round(np.geomspace(1, T, frames)).astype(np.int64) - 1
    return np.unique(np.concatenate([[0], ts, [T - 1]]))


def forward_title(fp: ForwardProcess, t: int) -> str:
    """The figure's title at t (the browser test reads the t in it)."""
    return f"Forward: t = {t} of {fp.T}, ᾱ_t = {fp.alphas_bar[t]:.2f}"


def forward_figure(
    fp: ForwardProcess, t: float | None, height: int = 420, y_range: Sequence[float] | None = None
) -> go.Figure:
    """Per class: the mean ± 1 sd of y_t as bars, some draws as dots, y0 and the prior as markers; the y
    axis over ``y_range`` (default ``fp.y_range()``), so that it can be shared with the reverse figure."""
    t = fp.clamp(t)
    names: Sequence[str] = fp.class_names
    c = len(names)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.22, 0.22, fp.draws.shape[1:])  # fixed, so the dots move smoothly
    colours = [class_colour(k) for k in range(c)]
    traces = [
        dict(
            type="bar",
            x=list(names),
            y=np.round(fp.mean[t], 4).tolist(),
            marker=dict(color=[rgba(col, 0.45) for col in colours], line=dict(color=colours, width=1.5)),
            error_y=dict(type="constant", value=float(fp.std[t]), color="#374151", thickness=1.5, width=6),
            name="mean ± 1 sd",
            customdata=fp.labels,
            hovertemplate="%{customdata}: mean %{y:.2f}<extra></extra>",
        ),
        dict(
            type="scatter",
            x=(np.arange(c)[None, :] + jitter).ravel().tolist(),
            y=np.round(fp.draws[t], 3).ravel().tolist(),
            mode="markers",
            marker=dict(size=5, color="rgba(17,24,39,0.45)"),
            name="draws of y_t",
            xaxis="x2",
            hoverinfo="skip",
        ),
        dict(
            type="scatter",
            x=list(names),
            y=fp.y0.tolist(),
            mode="markers",
            name="y₀ (one-hot label)",
            marker=dict(symbol="circle-open", size=14, color="#111827", line=dict(width=2)),
        ),
        dict(
            type="scatter",
            x=list(names),
            y=np.round(fp.prior, 4).tolist(),
            mode="markers",
            name="prior mean (the limit at t = T)",
            marker=dict(symbol="diamond", size=11, color="#F0E442", line=dict(color="#111827", width=1.2)),
        ),
    ]
    layout = base_layout(
        forward_title(fp, t),
        height,
        xaxis=axis("class", categoryorder="array", categoryarray=list(names)),
        xaxis2=dict(overlaying="x", range=[-0.5, c - 0.5], visible=False),
        yaxis=axis("label-vector value y_t", range=list(y_range or fp.y_range())),
        legend=legend_below(),
        margin=dict(l=55, r=15, t=45, b=110),
        uirevision="forward",
    )
    return plotly_figure(traces, layout)
