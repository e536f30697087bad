"""The animated forward-process figure of the Learn tab: q(y_t | y_0, prior) over t (plotly frames)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import axis, base_layout, class_colour, rgba


def forward_process_figure(
    class_names: Sequence[str],
    ts: np.ndarray,
    alphas_bar: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    draws: np.ndarray,
    y0: np.ndarray,
    prior: np.ndarray,
    height: int = 420,
) -> go.Figure:
    """q(y_t | y_0, prior) animated over t: per class the mean ± 1 sd, some draws, y_0 and the prior mean.

    ``ts`` (F,), ``alphas_bar`` (F,), ``mean`` (F, C), ``sd`` (F,), ``draws`` (F, S, C).
    """
    names = list(class_names)
    c = len(names)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.22, 0.22, draws.shape[1:])  # fixed across frames so the dots move smoothly
    xs = (np.arange(c)[None, :] + jitter).ravel().tolist()
    colours = [class_colour(k) for k in range(c)]

    def frame_data(f: int) -> list[dict]:
        """The traces that change from frame to frame: the bars and the draws at ts[f]."""
        return [
            dict(
                type="bar",
                x=names,
                y=np.round(mean[f], 4).tolist(),
                marker=dict(color=[rgba(col, 0.45) for col in colours], line=dict(color=colours, width=1.5)),
                error_y=dict(type="constant", value=float(sd[f]), color="#374151", thickness=1.5, width=6),
                name="mean ± 1 sd",
                hovertemplate="%{x}: mean %{y:.2f}<extra></extra>",
            ),
            dict(
                type="scatter",
                x=xs,
                y=np.round(draws[f], 3).ravel().tolist(),
                mode="markers",
                marker=dict(size=5, color="rgba(17,24,39,0.45)"),
                name="draws of y_t",
                xaxis="x2",
                hoverinfo="skip",
            ),
        ]

    static = [
        dict(
            type="scatter",
            x=names,
            y=y0.tolist(),
            mode="markers",
            name="y₀ (one-hot label)",
            marker=dict(symbol="circle-open", size=14, color="#111827", line=dict(width=2)),
        ),
        dict(
            type="scatter",
            x=names,
            y=np.round(prior, 4).tolist(),
            mode="markers",
            name="prior mean (limit at t = T)",
            marker=dict(symbol="diamond", size=11, color="#F0E442", line=dict(color="#111827", width=1.2)),
        ),
    ]
    lo = float(min(draws.min(), mean.min() - sd.max(), 0.0)) - 0.2
    hi = float(max(draws.max(), mean.max() + sd.max(), 1.0)) + 0.2

    def title(f: int) -> str:
        """The figure title at frame f."""
        return f"Forward process q(y_t | y₀, prior): t = {int(ts[f])}, ᾱ_t = {alphas_bar[f]:.3f}"

    frames = [
        go.Frame(
            data=frame_data(f), traces=[0, 1], name=str(int(ts[f])), layout=dict(title=dict(text=title(f)))
        )
        for f in range(len(ts))
    ]
    steps = [
        dict(
            method="animate",
            label=str(int(ts[f])),
            args=[[str(int(ts[f]))], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
        )
        for f in range(len(ts))
    ]
    layout = base_layout(
        title(0),
        height,
        xaxis=axis("class", categoryorder="array", categoryarray=names),
        xaxis2=dict(overlaying="x", range=[-0.5, c - 0.5], visible=False),
        yaxis=axis("label-vector value y_t", range=[lo, hi]),
        legend=dict(orientation="v", x=1.02, y=1, xanchor="left", yanchor="top"),
        margin=dict(l=55, r=220, t=45, b=130),
        sliders=[
            dict(
                active=0, steps=steps, currentvalue=dict(prefix="t = "), pad=dict(t=50), len=0.85, x=0.15, y=0
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=60),
                buttons=[
                    dict(
                        label="▶ Play",
                        method="animate",
                        args=[None, dict(frame=dict(duration=180, redraw=True), fromcurrent=True)],
                    ),
                    dict(
                        label="❚❚",
                        method="animate",
                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))],
                    ),
                ],
            )
        ],
    )
    return go.Figure(frame_data(0) + static, layout, frames=frames)
