"""The Diagnose tab's replay of a finished run: the pipeline's own record of the chain
(``DiffMICOutput.trajectory``) as it stood after k of its N reverse steps.

Nothing is recorded twice: a frame is a view of the first k steps of that record (``upto``). The slider
counts steps done (0 = the start at t = T, N = the answer at t = 0); Play steps through ``REPLAY_FRAMES``
evenly spaced frames, the start and the last step always among them, one every ``REPLAY_S`` seconds, so a
replay of any length takes a few seconds; when the server or the browser cannot keep up, frames are
skipped to keep that pace (``frame_at``), never the last one. Each frame sends the two figures only, as
light as the streamed ones (at most ``REPLAY_POINTS`` points a line, the latest step always kept).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from diffmic.trajectory import Trajectory

from . import figures

REPLAY_FRAMES = 36
REPLAY_S = 0.12  # seconds between frames
REPLAY_SECONDS = REPLAY_FRAMES * REPLAY_S  # a whole replay: about 4 s, frames dropped when behind
REPLAY_POINTS = 120  # per line of a replay frame (a streamed frame has up to MAX_PLOT_POINTS)


def upto(traj: Trajectory, steps: float) -> Trajectory:
    """The record as it stood after ``steps`` reverse steps (clamped to 0 … steps done); shares the arrays."""
    view = copy.copy(traj)
    view.steps_done = int(min(max(round(steps), 0), traj.steps_done))
    return view


def frame_steps(total: int, frames: int = REPLAY_FRAMES) -> np.ndarray:
    """The steps-done counts Play shows: about ``frames`` evenly spaced, always 0 and ``total``."""
    return np.unique(np.linspace(0, total, frames + 1).round().astype(np.int64))


def next_frame(total: int, step: float) -> int | None:
    """The first frame after ``step``, or None after the last."""
    frames = frame_steps(total)
    later = frames[frames > step]
    return int(later[0]) if len(later) else None


def frame_at(total: int, step: float, clock: tuple[float, float] | None, now: float) -> int | None:
    """The frame a playing replay shows at ``now``: the next one after ``step``, or the latest one due by
    the replay's clock (``(started, from_step)``: a whole replay lasts ``REPLAY_SECONDS``) when it is
    behind; None after the last frame."""
    nxt = next_frame(total, step)
    if nxt is None or clock is None:
        return nxt
    started, from_step = clock
    due = from_step + (now - started) / REPLAY_SECONDS * total
    frames = frame_steps(total)
    late = frames[(frames >= nxt) & (frames <= due)]
    return int(late[-1]) if len(late) else nxt


def timestep(traj: Trajectory, T: int) -> int:
    """The timestep the chain has reached: T before any step, then the timestep just denoised."""
    return int(traj.timesteps[-1]) if traj.steps_done else T


def replay_figures(
    traj: Trajectory, T: int, steps: float, labels: Sequence[str], each_run: bool = False
) -> tuple[go.Figure, go.Figure]:
    """The trajectory and the probability bars after ``steps`` steps of the run ``traj`` records."""
    view = upto(traj, steps)
    done, total = view.steps_done, traj.steps_done
    t = timestep(view, T)
    trajectory = figures.trajectory_figure(
        view, T, labels=labels, each_run=each_run, now=t, max_points=REPLAY_POINTS
    )
    names = traj.class_names
    if done == 0:
        bars = figures.probability_bars(names, traj.prior, labels=labels, title="Prior (the start, t = T)")
        return trajectory, bars
    last = np.array([done - 1])
    mean, low, high = figures.chain_summary(view, last)
    title = "Final probabilities" if done == total else f"After {done} of {total} steps (t = {t})"
    bars = figures.probability_bars(names, mean[0], traj.prior, low[0], high[0], title, labels)
    return trajectory, bars


def slider_update(total: int) -> dict[str, Any]:
    """The replay slider for a run of ``total`` steps, at its end (the run just finished)."""
    return gr.update(
        minimum=0,
        maximum=max(total, 1),
        value=total,
        info=f"0: the start at t = T · {total}: the answer at t = 0",
    )
