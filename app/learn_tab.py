"""The Learn tab's layout and events (handlers: ``learn.Lessons``).

The lesson appears when the tab is first opened (its select event), on the example image the lesson
chooses (its prior differs from its true label); it follows the model, image and prior controls. The
forward and the reverse process share one t: Play forward / Play reverse run a server-side timer, the
slider scrubs, and the schedule below marks the same t.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from diffmic.tasks import TASKS

from . import figures
from .gpu import on_gpu
from .learn import FRAME_OUTPUTS, LEARN_OUTPUTS, OWN_PRIOR, PLAY_OUTPUTS, SCRUB_OUTPUTS, Lessons
from .lesson_processes import CHAIN_HEIGHT
from .lesson_words import FORWARD_TEXT, PRIOR_TEXT, SAMPLER_TEXT, SCHEDULE_TEXT
from .models import ModelRegistry
from .widgets import disclaimer, error_box, model_dropdown

FRAME_S = 0.2  # seconds between animation frames


@dataclass(frozen=True)
class LessonControls:
    """What the lesson is of (the model, the image, the prior), Show me again, the error box and the intro."""

    model: gr.Dropdown
    image: gr.Dropdown
    show: gr.Button
    error: gr.Markdown
    intro: gr.Markdown
    favour: gr.Radio
    blend: gr.Slider


@dataclass(frozen=True)
class ProcessPanel:
    """The forward and the reverse process at one t, Play both ways and the slider, the noise schedule."""

    forward: gr.Plot
    reverse: gr.Plot
    play_forward: gr.Button
    play_reverse: gr.Button
    pause: gr.Button
    t: gr.Slider
    forward_note: gr.Markdown
    schedule: gr.Plot


@dataclass(frozen=True)
class ChainPanel:
    """The chains: DDPM vs DDIM, then with vs without the prior, each pair with its caption."""

    ddpm: gr.Plot
    ddim: gr.Plot
    sampler_note: gr.Markdown
    with_prior: gr.Plot
    without_prior: gr.Plot
    prior_note: gr.Markdown


@dataclass(frozen=True)
class LessonState:
    """What the page keeps: the lesson, what is shown, the direction of Play and its timer."""

    lesson: gr.State
    shown: gr.State
    direction: gr.State
    timer: gr.Timer


def build_learn_tab(lessons: Lessons, registry: ModelRegistry, tab: gr.Tab) -> None:
    """The Learn tab (inside ``tab``)."""
    disclaimer()
    controls = lesson_controls(lessons, registry)
    processes = process_panel()
    chains = chain_panel()
    state = lesson_state()
    wire_learn_tab(lessons, tab, controls, processes, chains, state)


def lesson_controls(lessons: Lessons, registry: ModelRegistry) -> LessonControls:
    """The model, the image and Show me again; the error box and the intro; the prior control."""
    task = registry.task_of(registry.default_choice(), load=False)
    choices = lessons.image_choices(task)
    class_names = list(TASKS[task].class_names) if task in TASKS else []
    with gr.Row(equal_height=True):
        model = model_dropdown(registry, "learn-model")
        image = gr.Dropdown(
            choices,
            value=choices[0][1],
            label="Image",
            elem_id="learn-image",
            info="Example images of the chosen model's task (a generated one if it has none).",
        )
        show = gr.Button("Show me again", variant="primary", elem_id="learn-run", scale=0, min_width=160)
    error = error_box("learn-error")
    intro = gr.Markdown("*Opening the lesson…*", elem_id="learn-intro")
    with gr.Row(equal_height=True):
        favour = gr.Radio(
            lessons.prior_choices(class_names),
            value=OWN_PRIOR,
            label="The prior the chain is centred on",
            info="The image's own prior (the guidance network's guess), or all of it on one class.",
            elem_id="learn-prior",
            scale=3,
        )
        blend = gr.Slider(
            0,
            1,
            value=0,
            step=0.05,
            label="Blend the prior towards uniform",
            info="0: as chosen · 1: every class equally likely",
            elem_id="learn-blend",
            scale=1,
            min_width=220,
        )
    return LessonControls(model, image, show, error, intro, favour, blend)


def process_panel() -> ProcessPanel:
    """The forward and the reverse figure, Play forward / Play reverse / Pause and t, the schedule."""
    gr.Markdown(FORWARD_TEXT)
    with gr.Row(equal_height=True):
        forward = gr.Plot(
            figures.empty_figure("Opening the lesson…", 420), show_label=False, elem_id="forward"
        )
        reverse = gr.Plot(
            figures.empty_figure("Opening the lesson…", 420), show_label=False, elem_id="reverse"
        )
    with gr.Row(equal_height=True):
        play_forward = gr.Button("Play forward", size="sm", elem_id="forward-play", scale=0, min_width=120)
        play_reverse = gr.Button("Play reverse", size="sm", elem_id="reverse-play", scale=0, min_width=120)
        pause = gr.Button("Pause", size="sm", elem_id="forward-pause", scale=0, min_width=80)
        t = gr.Slider(0, 999, value=0, step=1, label="t (timestep)", elem_id="forward-t", min_width=240)
    forward_note = gr.Markdown("", elem_id="forward-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            schedule = gr.Plot(figures.empty_figure("", 300), show_label=False, elem_id="schedule")
        with gr.Column(scale=2, min_width=260):
            gr.Markdown(SCHEDULE_TEXT)
    return ProcessPanel(forward, reverse, play_forward, play_reverse, pause, t, forward_note, schedule)


def chain_panel() -> ChainPanel:
    """DDPM vs DDIM and with vs without the prior, with their captions."""
    gr.Markdown(SAMPLER_TEXT)
    with gr.Row():
        ddpm = gr.Plot(figures.empty_figure("DDPM", CHAIN_HEIGHT), show_label=False, elem_id="learn-ddpm")
        ddim = gr.Plot(figures.empty_figure("DDIM", CHAIN_HEIGHT), show_label=False, elem_id="learn-ddim")
    sampler_note = gr.Markdown("")
    gr.Markdown(PRIOR_TEXT)
    with gr.Row():
        with_prior = gr.Plot(
            figures.empty_figure("with the prior", CHAIN_HEIGHT), show_label=False, elem_id="learn-with"
        )
        without_prior = gr.Plot(
            figures.empty_figure("without the prior", CHAIN_HEIGHT), show_label=False, elem_id="learn-without"
        )
    prior_note = gr.Markdown("", elem_id="learn-prior-note")
    return ChainPanel(ddpm, ddim, sampler_note, with_prior, without_prior, prior_note)


def lesson_state() -> LessonState:
    """The lesson kept between frames, the key of what is shown, the direction of Play, its timer."""
    lesson = gr.State(None)
    shown = gr.State(None)
    direction = gr.State("forward")
    timer = gr.Timer(FRAME_S, active=False)
    return LessonState(lesson, shown, direction, timer)


def wire_learn_tab(
    lessons: Lessons,
    tab: gr.Tab,
    controls: LessonControls,
    processes: ProcessPanel,
    chains: ChainPanel,
    state: LessonState,
) -> None:
    """The events: the lesson on opening and on each control, Play, Pause, the slider and the timer."""
    components = {**vars(controls), **vars(processes), **vars(chains), **vars(state)}
    model, image, favour, blend = controls.model, controls.image, controls.favour, controls.blend
    lesson, shown, direction, timer = state.lesson, state.shown, state.direction, state.timer
    t, show = processes.t, controls.show
    outputs = [components[name] for name in LEARN_OUTPUTS]
    inputs = [model, image, favour, blend]
    private = dict(api_visibility="private")
    quiet = dict(show_progress="hidden", **private)
    lesson_run = on_gpu(lessons.run)  # it runs the chains
    tab.select(on_gpu(lessons.on_open), [shown, *inputs], outputs, **private)
    show.click(lesson_run, inputs, outputs, api_visibility="undocumented", api_name="learn")
    model.input(on_gpu(lessons.for_model), model, outputs, **private)
    image.input(lesson_run, inputs, outputs, **private)
    favour.input(lesson_run, inputs, outputs, **private)
    blend.release(lesson_run, inputs, outputs, **private)
    frame_outputs = [components[name] for name in FRAME_OUTPUTS]
    play_outputs = [components[name] for name in PLAY_OUTPUTS]
    t.release(lessons.scrub, [lesson, t], [components[name] for name in SCRUB_OUTPUTS], **quiet)
    processes.play_forward.click(lessons.play_forward, [lesson, t], play_outputs, **quiet)
    processes.play_reverse.click(lessons.play_reverse, [lesson, t], play_outputs, **quiet)
    processes.pause.click(lambda: gr.Timer(active=False), None, timer, **quiet)
    timer.tick(lessons.advance, [lesson, t, direction], frame_outputs, **quiet)
