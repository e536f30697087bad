"""The Diagnose tab's inputs, its left column: the image box and its preview (side by side on a phone), the
error box right under them, the scan's details, the model, Run and Stop near the top, the settings (steps,
runs, seed) folded, and the example gallery.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from .assets import Example
from .glossary import info
from .models import ModelRegistry
from .settings import DEFAULT_DDIM_STEPS, DEFAULT_OPTIONS, DEFAULT_SAMPLER, MAX_SAMPLES, Settings
from .widgets import error_box, model_dropdown, steps_slider

DEFAULTS_NOTE = (
    f"Defaults: {DEFAULT_OPTIONS.sampler.upper()}{info(DEFAULT_OPTIONS.sampler)} with all T steps and "
    f"{DEFAULT_OPTIONS.samples} runs{info('run')} (independent denoising chains), seed "
    f"{DEFAULT_OPTIONS.seed}, as in the paper. DDIM{info('DDIM')} defaults to {DEFAULT_DDIM_STEPS} steps. "
    "The same seed gives the same answer."
)


@dataclass(frozen=True)
class DiagnoseInputs:
    """The left column's components (``gallery`` is None when there are no example images)."""

    upload: gr.File
    preview: gr.Image
    error: gr.Markdown
    scan_info: gr.Markdown
    model: gr.Dropdown
    run: gr.Button
    stop: gr.Button
    steps: gr.Slider
    samples: gr.Slider
    seed: gr.Number
    gallery: gr.Gallery | None


def gallery_items(examples: list[Example]) -> list[tuple]:
    """(thumbnail, caption) of each example; an unreadable example gets a grey tile and says so."""
    items = []
    for e in examples:
        try:
            items.append((e.thumbnail(), e.caption))
        except ValueError:
            items.append((np.full((64, 64, 3), 200, np.uint8), f"{e.caption} (unreadable)"))
    return items


def input_panel(registry: ModelRegistry, settings: Settings, examples: list[Example]) -> DiagnoseInputs:
    """The left column (inside the tab's first row)."""
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
        steps, samples, seed = run_settings(registry)
        gallery = None
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
    return DiagnoseInputs(upload, preview, error, scan_info, model, run, stop, steps, samples, seed, gallery)


def run_settings(registry: ModelRegistry) -> tuple[gr.Slider, gr.Slider, gr.Number]:
    """The folded settings: steps, runs and seed, and the defaults in words."""
    with gr.Accordion("Settings: steps, runs, seed", open=False, elem_id="settings"):
        steps = steps_slider(registry, DEFAULT_SAMPLER, "steps")
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
    return steps, samples, seed
