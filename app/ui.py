"""The Gradio Blocks of DiffMIC Explorer: the Diagnose, Learn and Evaluate tabs and their events.

Layout and wiring only: the handlers live in ``diagnose``, ``learn`` and ``evaluation``.
Endpoints: ``/diagnose`` (the streamed run of the Run button) and ``/predict`` (one JSON answer, the
same object as ``python -m diffmic predict --json``) are public; the rest are UI-only.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from . import figures
from .assets import Example, list_examples
from .diagnose import OUTPUTS, Diagnosis
from .evaluation import Evaluation, build_evaluate_tab
from .learn import Lessons, build_learn_tab
from .models import ModelRegistry
from .settings import (
    DEFAULT_DDIM_STEPS,
    DEFAULT_SAMPLER,
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    MAX_SAMPLES,
    MAX_STEPS,
    Settings,
    load_settings,
)
from .widgets import disclaimer, error_box, model_dropdown

INTRO = (
    "# DiffMIC Explorer\n"
    "DiffMIC (Yang et al., MICCAI 2023) classifies a medical image by **denoising its label**: a "
    "dual-granularity guidance network (DCG) looks at the whole image and at its most salient patches and "
    "gives a prior; a diffusion model then starts from noise around that prior and removes the noise step "
    "by step until a class-probability vector is left."
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


def build_demo(settings: Settings | None = None, registry: ModelRegistry | None = None) -> gr.Blocks:
    """Build the app (nothing is loaded or launched here)."""
    settings = settings or load_settings()
    registry = registry or ModelRegistry(settings)
    with gr.Blocks(title="DiffMIC Explorer", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(registry.status_markdown(), elem_id="model-status")
        with gr.Tabs():
            with gr.Tab("Diagnose", id="diagnose"):
                _diagnose_tab(Diagnosis(registry), registry, settings)
            with gr.Tab("Learn", id="learn"):
                build_learn_tab(Lessons(registry, settings), registry)
            with gr.Tab("Evaluate", id="evaluate"):
                build_evaluate_tab(Evaluation(registry), registry)
    return demo


def _steps_for(registry: ModelRegistry, choice: str, sampler: str) -> dict[str, Any]:
    T = registry.timesteps(choice) or MAX_STEPS
    value = T if str(sampler).upper() == "DDPM" else min(DEFAULT_DDIM_STEPS, T)
    return dict(maximum=max(T, 1), value=value)


def _diagnose_tab(diagnosis: Diagnosis, registry: ModelRegistry, settings: Settings) -> None:
    examples = list_examples(settings.assets_dir)
    disclaimer()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            upload = gr.File(
                label="Image (PNG, JPEG or DICOM)", type="filepath", elem_id="upload", height=110
            )
            preview = gr.Image(label="Your image", interactive=False, height=220, elem_id="preview")
            if examples:
                gallery = gr.Gallery(
                    gallery_items(examples),
                    label="…or pick an example (captions: the true label)",
                    columns=4,
                    height=210,
                    allow_preview=False,
                    elem_id="examples",
                )
            else:
                gr.Markdown(f"*No example images in `{settings.assets_dir}` yet.*")
            model = model_dropdown(registry, "model")
            sampler = gr.Radio(["DDPM", "DDIM"], value=DEFAULT_SAMPLER, label="Sampler", elem_id="sampler")
            steps = gr.Slider(
                1,
                MAX_STEPS,
                step=1,
                label="Steps",
                elem_id="steps",
                **_steps_for(registry, registry.default_choice(), DEFAULT_SAMPLER),
            )
            samples = gr.Slider(1, MAX_SAMPLES, value=DEFAULT_SAMPLES, step=1, label="Stochastic samples")
            seed = gr.Number(value=DEFAULT_SEED, precision=0, minimum=0, label="Seed")
            with gr.Row():
                run = gr.Button("Run", variant="primary", elem_id="run")
                stop = gr.Button("Stop", elem_id="stop")
            error = error_box("error")
        with gr.Column(scale=2, min_width=480):
            counter = gr.Markdown("", label="step counter", elem_id="counter")
            notice = gr.Markdown("", label="model notice", elem_id="notice")
            with gr.Row():
                with gr.Column(scale=3, min_width=360):
                    trajectory = gr.Plot(
                        figures.empty_figure("Run to see the label being denoised"),
                        label="Trajectory",
                        elem_id="trajectory",
                    )
                with gr.Column(scale=2, min_width=240):
                    bars = gr.Plot(
                        figures.empty_figure("Probabilities"), label="Probabilities", elem_id="bars"
                    )
            with gr.Row():
                with gr.Column(scale=1, min_width=220):
                    label = gr.Label(label="Answer", num_top_classes=6, elem_id="label")
                with gr.Column(scale=2, min_width=320):
                    summary = gr.Markdown("", label="summary", elem_id="summary")
            with gr.Row():
                saliency = gr.Image(
                    label="Global saliency (CAM of the answer)",
                    interactive=False,
                    elem_id="saliency",
                    height=240,
                )
                rois = gr.Image(
                    label="ROIs and attention weights", interactive=False, elem_id="rois", height=240
                )
                gradcam = gr.Image(
                    label="Grad-CAM++ (global network, answer)",
                    interactive=False,
                    elem_id="gradcam",
                    height=240,
                )
            crops = gr.Gallery(label="ROI crops, by attention", columns=6, height=150, elem_id="crops")
            downloads = gr.File(
                label="Downloads: trajectory CSV, JSON and PNG",
                file_count="multiple",
                interactive=False,
                elem_id="downloads",
            )
            with gr.Accordion("Result as JSON (what the predict API returns)", open=False):
                result_json = gr.JSON(label="prediction", elem_id="result-json")
    with gr.Row(visible=False):  # the predict API: its own inputs (CLI defaults), free of the sliders' limits
        api_inputs = [
            gr.File(type="filepath", label="image"),
            gr.Textbox(registry.default_choice(), label="model"),
            gr.Textbox("ddpm", label="sampler", info="ddpm or ddim"),
            gr.Number(0, label="steps", precision=0, info="0 = all T steps"),
            gr.Number(1, label="samples", precision=0),
            gr.Number(0, label="seed", precision=0),
        ]
        api_output = gr.JSON(label="prediction")
        api_button = gr.Button("predict")

    outputs = dict(
        counter=counter,
        trajectory=trajectory,
        bars=bars,
        saliency=saliency,
        rois=rois,
        crops=crops,
        gradcam=gradcam,
        label=label,
        summary=summary,
        downloads=downloads,
        json=result_json,
        error=error,
        notice=notice,
    )
    upload.change(
        diagnosis.preview, upload, [preview, error], api_visibility="private", show_progress="hidden"
    )
    if examples:

        def pick(current: str, evt: gr.SelectData) -> tuple:
            """Put the example in the upload box; switch to its task's model if a bundled one is chosen."""
            chosen = examples[evt.index]
            bundled = registry.available()
            switch = current in bundled and chosen.task in bundled and chosen.task != current
            return str(chosen.path), chosen.task if switch else gr.skip()

        gallery.select(pick, model, [upload, model], api_visibility="private", show_progress="hidden")
    model.change(
        lambda m, s: gr.update(**_steps_for(registry, m, s)),
        [model, sampler],
        steps,
        api_visibility="private",
    )
    sampler.change(
        lambda m, s: gr.update(**_steps_for(registry, m, s)),
        [model, sampler],
        steps,
        api_visibility="private",
    )
    running = run.click(
        diagnosis.run,
        [upload, model, sampler, steps, samples, seed],
        [outputs[name] for name in OUTPUTS],
        api_name="diagnose",
        show_progress="minimal",
    )
    stop.click(None, cancels=[running], api_visibility="private")
    api_button.click(diagnosis.predict, api_inputs, api_output, api_name="predict")
