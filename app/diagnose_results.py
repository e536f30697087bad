"""The Diagnose tab's answer, its right column: the step counter, the model's notice and the answer card
(which says first when the image cannot be assessed by the model); the trajectory with its sampler switch
and, once a run is done, its replay (Play / Pause, a slider of the steps, each run as a thin line); the
bars; the details and the JSON, folded; the downloads and the buttons that add the figure and the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from diffmic.diffusion import SAMPLERS

from . import figures
from .diagnose_frames import WAITING
from .diagnose_maps import panel_title
from .settings import DEFAULT_SAMPLER


@dataclass(frozen=True)
class AnswerCard:
    """The step counter, the model's notice and the answer card."""

    counter: gr.Markdown
    notice: gr.Markdown
    answer: gr.Markdown


@dataclass(frozen=True)
class TrajectoryPanel:
    """How the label was denoised: the sampler, the trajectory, its replay and what to look for."""

    sampler: gr.Radio
    trajectory: gr.Plot
    replay_box: gr.Column
    replay_play: gr.Button
    replay_pause: gr.Button
    replay: gr.Slider
    each_run: gr.Checkbox
    look_for: gr.Markdown


@dataclass(frozen=True)
class Probabilities:
    """The bars and the class names in full."""

    bars: gr.Plot
    glossary: gr.Markdown


@dataclass(frozen=True)
class DetailsPanel:
    """The details, the result as JSON, the downloads and the two buttons that add to them."""

    details: gr.Markdown
    json: gr.JSON
    downloads: gr.File
    make_figure: gr.Button
    make_report: gr.Button


@dataclass(frozen=True)
class DiagnoseResults:
    """The right column, by panel."""

    card: AnswerCard
    trajectory: TrajectoryPanel
    probabilities: Probabilities
    details: DetailsPanel


def results_panel() -> DiagnoseResults:
    """The right column (inside the tab's first row)."""
    with gr.Column(scale=2, min_width=340):
        counter = gr.Markdown("", label="step counter", elem_id="counter")
        notice = gr.Markdown("", label="model notice", elem_id="notice")
        answer = gr.Markdown(WAITING, label="answer", elem_classes="answer-card", elem_id="answer")
        with gr.Row(equal_height=False):
            trajectory = trajectory_panel()
            probabilities = probability_panel()
        details = details_panel()
    return DiagnoseResults(AnswerCard(counter, notice, answer), trajectory, probabilities, details)


def trajectory_panel() -> TrajectoryPanel:
    """The trajectory's column: its title, the sampler switch, the figure, the replay, what to look for."""
    with gr.Column(scale=3, min_width=300):
        panel_title("How the label was denoised")
        sampler = gr.Radio(
            [cls.label for cls in SAMPLERS.values()],
            value=DEFAULT_SAMPLER,
            label="Sampler (switching re-runs this image)",
            elem_id="sampler",
        )
        trajectory = gr.Plot(
            figures.empty_figure("Run to see the label being denoised"),
            label="trajectory",
            show_label=False,
            elem_id="trajectory",
        )
        with gr.Column(visible=False, elem_id="replay-box") as replay_box:
            with gr.Row(equal_height=False):
                replay_play = gr.Button("▶ Replay", size="sm", elem_id="replay-play", scale=0, min_width=90)
                replay_pause = gr.Button("Pause", size="sm", elem_id="replay-pause", scale=0, min_width=70)
                replay = gr.Slider(
                    0,
                    1,
                    value=1,
                    step=1,
                    label="Replay: steps done",
                    elem_id="replay",
                    min_width=180,
                )
            each_run = gr.Checkbox(False, label="Show each run as a thin line", elem_id="each-run")
        look_for = gr.Markdown("", label="what to look for", elem_classes="map-note", elem_id="look-for")
    return TrajectoryPanel(
        sampler, trajectory, replay_box, replay_play, replay_pause, replay, each_run, look_for
    )


def probability_panel() -> Probabilities:
    """The bars' column: its title, the bars and the class names in full."""
    with gr.Column(scale=2, min_width=240):
        panel_title("Probabilities")
        bars = gr.Plot(
            figures.empty_figure("Probabilities", 300),
            label="probabilities",
            show_label=False,
            elem_id="bars",
        )
        glossary = gr.Markdown("", label="class names", elem_classes="map-note", elem_id="glossary")
    return Probabilities(bars, glossary)


def details_panel() -> DetailsPanel:
    """The folded details and JSON, the downloads, and the figure and report buttons."""
    with gr.Accordion("Details: statistics, priors, distribution check", open=False, elem_id="details-box"):
        details = gr.Markdown("", label="details", elem_id="details")
        with gr.Accordion("Result as JSON (what the predict API returns)", open=False):
            result_json = gr.JSON(label="prediction", elem_id="result-json")
    downloads = gr.File(
        label="Downloads: trajectory CSV and JSON (and the figure and the report, once made)",
        file_count="multiple",
        interactive=False,
        elem_id="downloads",
    )
    with gr.Row():
        make_figure = gr.Button("Make the trajectory figure (PNG, 200 dpi)", size="sm", elem_id="make-figure")
        make_report = gr.Button("Case report (PDF)", size="sm", elem_id="make-report")
    return DetailsPanel(details, result_json, downloads, make_figure, make_report)
