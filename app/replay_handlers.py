"""Diagnose's replay controls: Play, its timer's ticks, the slider moved by hand, each run shown or hidden.

Every frame is a view of the run's own trajectory (``replay.replay_figures``), paced by ``clock``
(``replay.frame_at``); the handlers answer in the order of ``REPLAY_OUTPUTS`` or ``REDRAW_OUTPUTS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from . import replay
from .diagnose_frames import REDRAW_OUTPUTS, REPLAY_OUTPUTS
from .frames import named
from .run_downloads import FigureRequest


class ReplayHandlers:
    """The replay's handlers; ``clock`` gives the replay's time in seconds."""

    clock: Callable[[], float]

    def replay_play(
        self, request: FigureRequest | None, step: float, each_run: bool = False, clock: Any = None
    ) -> tuple:
        """Play: from the start again when the slider is at the end; the timer starts, and the replay's
        clock with it (``replay.frame_at``)."""
        if request is None:
            gr.Info("Run the model first: the replay shows a run.")
            return named(REPLAY_OUTPUTS, replay_timer=gr.Timer(active=False))
        total = request.trajectory.steps_done
        if replay.next_frame(total, step) is None:  # at the end: start again
            return self._replay_frame(request, 0, each_run, playing=True)
        return named(REPLAY_OUTPUTS, replay_timer=gr.Timer(active=True), replay_clock=(self.clock(), step))

    def replay_tick(
        self, request: FigureRequest | None, step: float, each_run: bool = False, clock: Any = None
    ) -> tuple:
        """One tick of Play: the frame due (the next one, or a later one when the replay is behind its
        clock); the timer stops after the last one, or when no run is shown."""
        total = request.trajectory.steps_done if request is not None else 0
        nxt = replay.frame_at(total, step, clock, self.clock()) if request is not None else None
        if nxt is None:
            return named(REPLAY_OUTPUTS, replay_timer=gr.Timer(active=False))
        playing = replay.next_frame(total, nxt) is not None
        return self._replay_frame(request, nxt, each_run, playing, clock)

    def replay_at(
        self, request: FigureRequest | None, step: float, each_run: bool = False, clock: Any = None
    ) -> tuple:
        """The run as it stood after ``step`` steps (the slider was moved, or the runs shown or hidden):
        the figures of ``REDRAW_OUTPUTS``, and a playing replay carries on from there."""
        if request is None:
            return named(REDRAW_OUTPUTS)
        trajectory, bars = self._figures(request, step, each_run)
        return named(REDRAW_OUTPUTS, trajectory=trajectory, bars=bars, replay_clock=(self.clock(), step))

    def runs_after_run(
        self, request: FigureRequest | None, step: float, each_run: bool, clock: Any = None
    ) -> tuple:
        """After a run: its figures again with each run as a thin line if that box is ticked, else nothing."""
        if not each_run:
            return named(REDRAW_OUTPUTS)
        return self.replay_at(request, step, each_run)

    @staticmethod
    def _figures(request: FigureRequest, step: float, each_run: bool) -> tuple:
        labels = list(request.labels) or list(request.trajectory.class_names)
        return replay.replay_figures(request.trajectory, request.T, step, labels, each_run)

    def _replay_frame(
        self, request: FigureRequest, step: int, each_run: bool, playing: bool, clock: Any = None
    ) -> tuple:
        trajectory, bars = self._figures(request, step, each_run)
        return named(
            REPLAY_OUTPUTS,
            replay=step,
            trajectory=trajectory,
            bars=bars,
            replay_timer=gr.Timer(active=playing),
            replay_clock=clock if clock is not None else (self.clock(), step),
        )
