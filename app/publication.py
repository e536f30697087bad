"""A publication-quality PNG of a trajectory, drawn with matplotlib (object API: safe across threads)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .figures import class_colour
from .trajectory import Trajectory


def trajectory_png(
    traj: Trajectory,
    path: str | Path,
    t_max: int,
    title: str,
    prior_label: str = "fused prior",
    dpi: int = 200,
) -> Path:
    """Save the class probabilities against the timestep (mean line, min–max band, prior) as a PNG."""
    fig = Figure(figsize=(7.0, 4.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    t = traj.timesteps
    mean, low, high = traj.mean, traj.low, traj.high
    for c, name in enumerate(traj.class_names):
        colour = class_colour(c)
        if traj.samples > 1:
            ax.fill_between(t, low[:, c], high[:, c], color=colour, alpha=0.16, linewidth=0)
        ax.plot(t, mean[:, c], color=colour, linewidth=1.8, label=name)
        ax.plot(
            [t_max],
            [traj.prior[c]],
            marker="D",
            markersize=6,
            color=colour,
            markeredgecolor="#111827",
            zorder=5,
        )
    ax.plot([], [], "D", color="white", markeredgecolor="#111827", label=f"{prior_label} (t = T)")
    ax.set_xlim(t_max * 1.03 + 1, -t_max * 0.01)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("timestep $t$ (reverse process runs from $T$ to 0)")
    ax.set_ylabel("class probability")
    band = f"lines: mean of {traj.samples} samples; shaded: min–max" if traj.samples > 1 else "one sample"
    ax.set_title(f"{title}\n{band}; ◆ {prior_label} at t = T", fontsize=9, loc="left")
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    path = Path(path)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path
