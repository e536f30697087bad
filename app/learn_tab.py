"""The Learn tab's layout and events (handlers: ``learn.Lessons``).

The figures appear when the tab is first opened (its select event), follow the model and image menus,
and the forward process plays on a server-side timer (Play / Pause) or follows the t slider.
"""

from __future__ import annotations

import gradio as gr

from . import figures
from .gpu import on_gpu
from .learn import CHAIN_HEIGHT, FORWARD_TEXT, PRIOR_TEXT, SAMPLER_TEXT, Lessons
from .models import ModelRegistry
from .widgets import disclaimer, error_box, model_dropdown

FRAME_S = 0.3  # seconds between animation frames


def build_learn_tab(lessons: Lessons, registry: ModelRegistry, tab: gr.Tab) -> None:
    """The Learn tab (inside ``tab``)."""
    choices = lessons.image_choices(registry.task_of(registry.default_choice(), load=False))
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
    gr.Markdown(FORWARD_TEXT)
    forward = gr.Plot(figures.empty_figure("Opening the lesson…", 420), show_label=False, elem_id="forward")
    with gr.Row(equal_height=True):
        play = gr.Button("Play", elem_id="forward-play", scale=0, min_width=90)
        pause = gr.Button("Pause", elem_id="forward-pause", scale=0, min_width=90)
        t = gr.Slider(0, 999, value=0, step=1, label="t (timestep)", elem_id="forward-t")
    forward_note = gr.Markdown("")
    gr.Markdown(SAMPLER_TEXT)
    with gr.Row():
        ddpm = gr.Plot(figures.empty_figure("DDPM", CHAIN_HEIGHT), show_label=False, elem_id="learn-ddpm")
        ddim = gr.Plot(figures.empty_figure("DDIM", CHAIN_HEIGHT), show_label=False, elem_id="learn-ddim")
    sampler_note = gr.Markdown("")
    gr.Markdown(PRIOR_TEXT)
    with gr.Row():
        with_prior = gr.Plot(figures.empty_figure("with the prior", CHAIN_HEIGHT), show_label=False)
        without_prior = gr.Plot(figures.empty_figure("without the prior", CHAIN_HEIGHT), show_label=False)
    prior_note = gr.Markdown("")
    lesson = gr.State(None)
    shown = gr.State(None)
    timer = gr.Timer(FRAME_S, active=False)

    outputs = [
        forward,
        t,
        lesson,
        ddpm,
        ddim,
        with_prior,
        without_prior,
        forward_note,
        sampler_note,
        prior_note,
    ]
    outputs += [error, shown]
    private = dict(api_visibility="private")
    lesson_run, on_open = on_gpu(lessons.run), on_gpu(lessons.on_open)  # they run the chains
    tab.select(on_open, [shown, model, image], outputs, **private)
    show.click(lesson_run, [model, image], outputs, api_visibility="undocumented", api_name="learn")
    model.input(lessons.images_for, model, image, **private).then(
        lesson_run, [model, image], outputs, **private
    )
    image.input(lesson_run, [model, image], outputs, **private)
    t.release(lessons.scrub, [lesson, t], forward, show_progress="hidden", **private)
    play.click(lessons.play, [lesson, t], [t, timer], show_progress="hidden", **private)
    pause.click(lambda: gr.Timer(active=False), None, timer, show_progress="hidden", **private)
    timer.tick(lessons.advance, [lesson, t], [t, forward, timer], show_progress="hidden", **private)
