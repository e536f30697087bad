"""The Learn tab's layout and events (handlers: ``learn.Lessons``).

The lesson appears when the tab is first opened (its select event), on the example image the lesson
chooses (its prior differs from its true label); it follows the model, image and prior controls. The
forward and the reverse process share one t: Play forward / Play reverse run a server-side timer, the
slider scrubs, and the schedule below marks the same t.
"""

from __future__ import annotations

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


def build_learn_tab(lessons: Lessons, registry: ModelRegistry, tab: gr.Tab) -> None:
    """The Learn tab (inside ``tab``)."""
    task = registry.task_of(registry.default_choice(), load=False)
    choices = lessons.image_choices(task)
    class_names = list(TASKS[task].class_names) if task in TASKS else []
    disclaimer()
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
    lesson = gr.State(None)
    shown = gr.State(None)
    direction = gr.State("forward")
    timer = gr.Timer(FRAME_S, active=False)

    components = dict(
        image=image,
        favour=favour,
        blend=blend,
        intro=intro,
        forward=forward,
        reverse=reverse,
        schedule=schedule,
        t=t,
        lesson=lesson,
        ddpm=ddpm,
        ddim=ddim,
        with_prior=with_prior,
        without_prior=without_prior,
        forward_note=forward_note,
        sampler_note=sampler_note,
        prior_note=prior_note,
        error=error,
        shown=shown,
        direction=direction,
        timer=timer,
    )
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
    play_forward.click(lessons.play_forward, [lesson, t], play_outputs, **quiet)
    play_reverse.click(lessons.play_reverse, [lesson, t], play_outputs, **quiet)
    pause.click(lambda: gr.Timer(active=False), None, timer, **quiet)
    timer.tick(lessons.advance, [lesson, t, direction], frame_outputs, **quiet)
