"""The Diagnose tab's layout and events (handlers: ``diagnose.Diagnosis``).

Inputs on the left, with Run near the top (reachable without scrolling at 1400 x 900, and at 390 x 844
where the image box and its preview sit side by side) and the error box right under them; the image box
stays a drop / choose target once an image is in (``widgets.REPLACE_JS``); on the right the counter, the
answer card (which says first when the image cannot be assessed by the model), the trajectory with its
sampler switch and, once a run is done, its replay (Play / Pause, a slider of the steps, each run as a
thin line), and the bars; under both, full width, where the model looked (the ROI patches pixel for pixel).
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from diffmic.diffusion import SAMPLERS

from . import figures, maps
from .assets import Example, list_examples
from .controls import scan_details
from .diagnose import Diagnosis
from .diagnose_frames import OUTPUTS, REDRAW_OUTPUTS, REPLAY_OUTPUTS, WAITING
from .glossary import info
from .gpu import on_gpu
from .models import ModelRegistry
from .replay import REPLAY_S
from .settings import DEFAULT_DDIM_STEPS, DEFAULT_OPTIONS, DEFAULT_SAMPLER, MAX_SAMPLES, Settings
from .widgets import disclaimer, error_box, model_dropdown, replace_target, steps_range, steps_update

IMAGE_BUTTONS = ["fullscreen", "download"]  # no "share": results are not for posting
DEFAULTS_NOTE = (
    f"Defaults: {DEFAULT_OPTIONS.sampler.upper()}{info(DEFAULT_OPTIONS.sampler)} with all T steps and "
    f"{DEFAULT_OPTIONS.samples} runs{info('run')} (independent denoising chains), seed "
    f"{DEFAULT_OPTIONS.seed}, as in the paper. DDIM{info('DDIM')} defaults to {DEFAULT_DDIM_STEPS} steps. "
    "The same seed gives the same answer."
)


def gallery_items(examples: list[Example]) -> list[tuple]:
    """(thumbnail, caption) of each example; an unreadable example gets a grey tile and says so."""
    items = []
    for e in examples:
        try:
            items.append((e.thumbnail(), e.caption))
        except ValueError:
            items.append((np.full((64, 64, 3), 200, np.uint8), f"{e.caption} (unreadable)"))
    return items


def _map_image(label: str, elem_id: str) -> gr.Image:
    """One map of "Where the model looked": at least 384 px, enlargeable, its title outside."""
    return gr.Image(
        label=label, show_label=False, interactive=False, height=400, buttons=IMAGE_BUTTONS, elem_id=elem_id
    )


def _title(text: str) -> gr.Markdown:
    return gr.Markdown(text, elem_classes="map-title")


def build_diagnose_tab(diagnosis: Diagnosis, registry: ModelRegistry, settings: Settings) -> None:
    """The Diagnose tab (inside a gr.Tab)."""
    examples = list_examples(settings.assets_dir)
    disclaimer()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            with gr.Row(equal_height=False, elem_id="image-row"):  # side by side on a phone only (CSS)
                upload = gr.File(
                    label="Image (PNG, JPEG or DICOM)",
                    type="filepath",
                    elem_id="upload",
                    height=130,
                    min_width=140,
                )
                preview = gr.Image(
                    label="Your image",
                    interactive=False,
                    height=170,
                    elem_id="preview",
                    buttons=["fullscreen"],
                    min_width=140,
                )
            error = error_box("error")
            scan_info = gr.Markdown("", elem_id="scan-info", elem_classes="map-note")  # DICOM metadata
            model = model_dropdown(registry, "model")
            with gr.Row():
                run = gr.Button("Run", variant="primary", elem_id="run", min_width=100)
                stop = gr.Button("Stop", elem_id="stop", min_width=100)
            with gr.Accordion("Settings: steps, runs, seed", open=False, elem_id="settings"):
                steps = gr.Slider(
                    minimum=1,
                    step=1,
                    label="Steps",
                    elem_id="steps",
                    **steps_range(registry, registry.default_choice(), DEFAULT_SAMPLER),
                )
                samples = gr.Slider(
                    1,
                    MAX_SAMPLES,
                    value=DEFAULT_OPTIONS.samples,
                    step=1,
                    label="Runs (independent denoising chains)",
                    elem_id="samples",
                )
                seed = gr.Number(value=DEFAULT_OPTIONS.seed, precision=0, minimum=0, label="Seed")
                gr.Markdown(DEFAULTS_NOTE, elem_classes="map-note")
            if examples:
                gallery = gr.Gallery(
                    gallery_items(examples),
                    label="…or pick an example (true label shown)",
                    columns=3,
                    height="auto",
                    allow_preview=False,
                    buttons=[],
                    elem_id="examples",
                )
            else:
                gr.Markdown(f"*No example images in `{settings.assets_dir}` yet.*")
        with gr.Column(scale=2, min_width=340):
            counter = gr.Markdown("", label="step counter", elem_id="counter")
            notice = gr.Markdown("", label="model notice", elem_id="notice")
            answer = gr.Markdown(WAITING, label="answer", elem_classes="answer-card", elem_id="answer")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=300):
                    _title("How the label was denoised")
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
                            replay_play = gr.Button(
                                "▶ Replay", size="sm", elem_id="replay-play", scale=0, min_width=90
                            )
                            replay_pause = gr.Button(
                                "Pause", size="sm", elem_id="replay-pause", scale=0, min_width=70
                            )
                            replay = gr.Slider(
                                0,
                                1,
                                value=1,
                                step=1,
                                label="Replay: steps done",
                                elem_id="replay",
                                min_width=180,
                            )
                        each_run = gr.Checkbox(
                            False, label="Show each run as a thin line", elem_id="each-run"
                        )
                    look_for = gr.Markdown(
                        "", label="what to look for", elem_classes="map-note", elem_id="look-for"
                    )
                with gr.Column(scale=2, min_width=240):
                    _title("Probabilities")
                    bars = gr.Plot(
                        figures.empty_figure("Probabilities", 300),
                        label="probabilities",
                        show_label=False,
                        elem_id="bars",
                    )
                    glossary = gr.Markdown(
                        "", label="class names", elem_classes="map-note", elem_id="glossary"
                    )
            with gr.Accordion(
                "Details: statistics, priors, distribution check", open=False, elem_id="details-box"
            ):
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
                make_figure = gr.Button(
                    "Make the trajectory figure (PNG, 200 dpi)", size="sm", elem_id="make-figure"
                )
                make_report = gr.Button("Case report (PDF)", size="sm", elem_id="make-report")
    gr.Markdown("### Where the model looked")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=340):
            _title("Original (the model's view of the image)")
            original = _map_image("original", "original")
        with gr.Column(min_width=340):
            _title("Heat map of the answer")
            heat_choice = gr.Radio(
                list(maps.HEAT_MAPS), value=maps.DEFAULT_HEAT, show_label=False, elem_id="heat-choice"
            )
            heat = _map_image("heat map", "heat")
            gr.HTML(maps.colour_scale_html())
            opacity = gr.Slider(
                0, 1, value=maps.DEFAULT_OPACITY, step=0.05, label="Opacity of the map", elem_id="opacity"
            )
            gr.Markdown(
                f"DCG{info('DCG')} evidence{info('CAM')}: "
                + maps.HEAT_NOTES["saliency"]
                + f". Grad-CAM{info('Grad-CAM')}: "
                + maps.HEAT_NOTES["gradcam"]
                + ".",
                elem_classes="map-note",
            )
        with gr.Column(min_width=340):
            _title(f"Regions of interest{info('ROI')} (1 = most attended)")
            rois = _map_image("regions of interest", "rois")
            _title("The regions as the local network saw them (rank · attention weight · size in pixels)")
            crops = gr.Gallery(  # 3 a row fit the column (more overflowed it, and the label hid the top)
                label="ROI patches",
                show_label=False,
                columns=3,
                height="auto",
                buttons=["fullscreen"],
                elem_id="crops",
            )
    replace_target()
    map_state = gr.State(None)
    figure_state = gr.State(None)
    token = gr.State(None)
    replay_timer = gr.Timer(REPLAY_S, active=False)
    replay_clock = gr.State(None)
    with gr.Row(visible=False):  # the predict API: its own inputs (CLI defaults), free of the sliders' limits
        api_inputs = [
            gr.File(type="filepath", label="image"),
            gr.Textbox(registry.default_choice(), label="model"),
            gr.Textbox("ddpm", label="sampler", info=" or ".join(SAMPLERS)),
            gr.Number(0, label="steps", precision=0, info="0 = all T steps"),
            gr.Number(1, label="samples", precision=0),
            gr.Number(0, label="seed", precision=0),
        ]
        api_output = gr.JSON(label="prediction")
        api_button = gr.Button("predict")

    components = dict(
        counter=counter,
        answer=answer,
        trajectory=trajectory,
        look_for=look_for,
        bars=bars,
        glossary=glossary,
        original=original,
        heat=heat,
        rois=rois,
        crops=crops,
        details=details,
        downloads=downloads,
        json=result_json,
        maps=map_state,
        figure=figure_state,
        error=error,
        notice=notice,
        replay=replay,
        replay_box=replay_box,
        replay_timer=replay_timer,
        replay_clock=replay_clock,
    )
    outputs = [components[name] for name in OUTPUTS]
    run_inputs = [upload, model, sampler, steps, samples, seed, token]
    private = dict(api_visibility="private")

    upload.change(diagnosis.preview, upload, [preview, *outputs], show_progress="hidden", **private)
    upload.change(scan_details, upload, scan_info, show_progress="hidden", **private)
    if examples:

        def pick(current: str, evt: gr.SelectData) -> tuple:
            """Put the example in the upload box; switch to its task's model if a bundled one is chosen."""
            chosen = examples[evt.index]
            bundled = registry.available()
            switch = current in bundled and chosen.task in bundled and chosen.task != current
            return str(chosen.path), chosen.task if switch else gr.skip()

        gallery.select(pick, model, [upload, model], show_progress="hidden", **private)
    model.change(diagnosis.model_changed, model, outputs, show_progress="hidden", **private).then(
        lambda m, s: steps_update(registry, m, s), [model, sampler], steps, **private
    )
    replay_inputs = [figure_state, replay, each_run, replay_clock]
    replay_outputs = [components[name] for name in REPLAY_OUTPUTS]
    redraw_outputs = [components[name] for name in REDRAW_OUTPUTS]
    hidden_progress = dict(show_progress="hidden", **private)
    run.click(diagnosis.arm, None, [token, counter], queue=False, **private).then(
        on_gpu(diagnosis.run), run_inputs, outputs, api_name="diagnose", show_progress="hidden"
    ).then(diagnosis.runs_after_run, replay_inputs, redraw_outputs, **hidden_progress)
    stop.click(diagnosis.stop, None, None, queue=False, **private)
    sampler.input(lambda m, s: steps_update(registry, m, s), [model, sampler], steps, **private).then(
        diagnosis.token, None, token, queue=False, **private
    ).then(on_gpu(diagnosis.rerun), [map_state, *run_inputs], outputs, **hidden_progress).then(
        diagnosis.runs_after_run, replay_inputs, redraw_outputs, **hidden_progress
    )
    replay_play.click(diagnosis.replay_play, replay_inputs, replay_outputs, **hidden_progress)
    replay_pause.click(lambda: gr.Timer(active=False), None, replay_timer, **hidden_progress)
    replay_timer.tick(diagnosis.replay_tick, replay_inputs, replay_outputs, **hidden_progress)
    for control in (replay, each_run):
        control.input(
            diagnosis.replay_at, replay_inputs, redraw_outputs, trigger_mode="always_last", **hidden_progress
        )
    for control in (heat_choice, opacity):
        control.change(
            on_gpu(diagnosis.redraw_heat),
            [map_state, heat_choice, opacity],
            heat,
            show_progress="hidden",
            **private,
        )
    make_figure.click(diagnosis.figure, figure_state, downloads, show_progress="minimal", **private)
    make_report.click(diagnosis.case_report, figure_state, downloads, show_progress="minimal", **private)
    api_button.click(on_gpu(diagnosis.predict), api_inputs, api_output, api_name="predict")
