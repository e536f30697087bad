"""The look every plotly figure of the app shares: the colours of the classes, the font, the layout, the
axes, the legend, and building a figure fast from plain dicts."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

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
    """A plotly figure of the dicts the app's figure modules write, built without plotly's per-property
    validation: it costs ~40 ms a figure, ten times the rest of a streamed frame. The dicts are checked
    with validation on by the tests (``tests/test_app_support.py``)."""
    return go.Figure(list(traces), layout, _validate=False)
