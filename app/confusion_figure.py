"""Evaluate's confusion matrix: the count written in every cell, a colour bar, darker where there are more
images (a light-to-dark sequential scale from 0 to the largest count)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .figure_style import axis, base_layout, plotly_figure

# ColorBrewer's sequential Blues, light (no image) to dark (the most images)
SCALE = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
DARK_TEXT, LIGHT_TEXT = "#111827", "#ffffff"


def scale_colour(fraction: float) -> str:
    """The scale's colour at ``fraction`` (0 = no image, 1 = the largest count), at its nearest stop."""
    return SCALE[round(min(max(fraction, 0.0), 1.0) * (len(SCALE) - 1))]


def luminance(hex_colour: str) -> float:
    """Relative luminance (0 black … 1 white) of ``#rrggbb``."""
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def confusion_figure(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], height: int = 420
) -> go.Figure:
    """Heat map of the confusion matrix (rows: true class, columns: predicted class): each cell's count
    written in it (white on the dark cells), the colour bar counting images."""
    z = np.asarray(matrix, dtype=int)
    names = list(class_names)
    top = max(int(z.max()), 1) if z.size else 1
    stops = np.linspace(0, 1, len(SCALE))
    trace = dict(
        type="heatmap",
        z=z.tolist(),
        x=names,
        y=names,
        zmin=0,
        zmax=top,
        colorscale=[[float(s), c] for s, c in zip(stops, SCALE, strict=True)],
        showscale=True,
        colorbar=dict(title=dict(text="images", side="right"), thickness=14, outlinewidth=0),
        hovertemplate="true %{y} → predicted %{x}: %{z} image(s)<extra></extra>",
        xgap=1,
        ygap=1,
    )
    counts = [
        dict(
            x=names[j],
            y=names[i],
            text=str(int(z[i, j])),
            showarrow=False,
            font=dict(color=LIGHT_TEXT if luminance(scale_colour(z[i, j] / top)) < 0.5 else DARK_TEXT),
        )
        for i in range(z.shape[0])
        for j in range(z.shape[1])
    ]
    layout = base_layout(
        "",
        height,
        xaxis=axis("predicted class", side="bottom", automargin=True),
        yaxis=axis("true class", autorange="reversed", automargin=True),
        annotations=counts,
    )
    return plotly_figure([trace], layout)
