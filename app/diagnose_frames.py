"""The Diagnose tab's frames: what a handler sends, as a tuple in the order of ``OUTPUTS`` (``frame``;
outputs a frame does not change are ``gr.skip()``), the page with every result emptied (``cleared``), the
error frame, and the one line under the trajectory (``look_for``)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from diffmic.diffusion import sampler_class

from . import figures
from .errors import error_markdown
from .frames import named

OUTPUTS = (
    "counter",
    "answer",
    "trajectory",
    "look_for",
    "bars",
    "glossary",
    "original",
    "heat",
    "rois",
    "crops",
    "details",
    "downloads",
    "json",
    "maps",
    "figure",
    "error",
    "notice",
    "replay",
    "replay_box",
)
# what a replay handler sends: the slider, the two figures it moves, the replay's timer and its clock (when
# Play started and from which step); the replay's handlers take (the run, the slider, "each run", the clock)
REPLAY_OUTPUTS = ("replay", "trajectory", "bars", "replay_timer", "replay_clock")
REDRAW_OUTPUTS = ("trajectory", "bars", "replay_clock")  # the slider moved by hand, the runs shown or hidden
WAITING = "*Run to see the answer here.*"


def frame(**values: Any) -> tuple:
    """A tuple in ``OUTPUTS`` order; outputs not given are left unchanged."""
    return named(OUTPUTS, **values)


def hidden() -> dict:
    """An empty, hidden Markdown box."""
    return gr.update(value="", visible=False)


def cleared(**values: Any) -> tuple:
    """Every result emptied (the inputs changed or the run failed); ``values`` override."""
    empty = dict(
        counter="",
        answer=WAITING,
        trajectory=figures.empty_figure("Run to see the label being denoised"),
        look_for="",
        bars=figures.empty_figure("Probabilities", 300),
        glossary="",
        original=None,
        heat=None,
        rois=None,
        crops=[],
        details="",
        downloads=None,
        json=None,
        maps=None,
        figure=None,
        error=hidden(),
        notice="",
        replay=gr.update(value=0),
        replay_box=gr.update(visible=False),
    )
    return frame(**{**empty, **values})


def error_frame(message: str) -> tuple:
    """The message in the error box, the stale results cleared."""
    return cleared(error=gr.update(value=error_markdown(message), visible=True))


def look_for(sampler: str, samples: int) -> str:
    """The one line under the trajectory: what to look for, and what the lines and bands are."""
    return f"{sampler_class(sampler).look_for} {figures.band_note(samples)}"
