"""A publication-quality PNG of a trajectory, drawn with matplotlib (object API: safe across threads).

It shows what the page shows: per class the mean over the runs (the answer's statistic) and their
range (min–max), starting at the prior at t = T.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from diffmic.trajectory import Trajectory

from .figure_style import class_colour
from .figures import band_note, chain_summary


def trajectory_png(
    traj: Trajectory,
    path: str | Path,
    T: int,
    title: str,
    prior_label: str = "prior",
    dpi: int = 200,
) -> Path:
    """Save the class probabilities against the timestep (mean line, min–max band, prior) as a PNG."""
    fig = Figure(figsize=(7.0, 4.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    idx = np.arange(traj.steps_done)
    t = np.concatenate([[T], traj.timesteps])
    median, low, high = (np.concatenate([traj.prior[None], m]) for m in chain_summary(traj, idx))
    for c, name in enumerate(traj.class_names):
        colour = class_colour(c)
        if traj.samples > 1:
            ax.fill_between(t, low[:, c], high[:, c], color=colour, alpha=0.18, linewidth=0)
        ax.plot(t, median[:, c], color=colour, linewidth=1.8, label=name)
        ax.plot(
            [T], [traj.prior[c]], marker="D", markersize=6, color=colour, markeredgecolor="#111827", zorder=5
        )
    ax.plot([], [], "D", color="white", markeredgecolor="#111827", label=f"{prior_label} (t = T)")
    ax.set_xlim(T * 1.03, -T * 0.01)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("timestep $t$ (the chain runs from $T$ down to 0)")
    ax.set_ylabel("probability")
    ax.set_title(f"{title}\n{band_note(traj.samples)}", fontsize=9, loc="left")
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    path = Path(path)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path
