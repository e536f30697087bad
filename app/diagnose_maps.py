"""The Diagnose tab's "Where the model looked", full width under the inputs and the answer: the model's
view of the image, the heat map of the answer (its choice, colour scale and opacity) and the regions of
interest with their patches pixel for pixel; and the bold titles every panel of the tab sets outside its
figure (``panel_title``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import maps
from .glossary import info

IMAGE_BUTTONS = ["fullscreen", "download"]  # no "share": results are not for posting


@dataclass(frozen=True)
class MapPanel:
    """The maps of "Where the model looked" and their two controls."""

    original: gr.Image
    heat_choice: gr.Radio
    heat: gr.Image
    opacity: gr.Slider
    rois: gr.Image
    crops: gr.Gallery


def _map_image(label: str, elem_id: str) -> gr.Image:
    """One map of "Where the model looked": at least 384 px, enlargeable, its title outside."""
    return gr.Image(
        label=label, show_label=False, interactive=False, height=400, buttons=IMAGE_BUTTONS, elem_id=elem_id
    )


def panel_title(text: str) -> gr.Markdown:
    """A panel's bold title, set outside its figure."""
    return gr.Markdown(text, elem_classes="map-title")


def map_panel() -> MapPanel:
    """The heading and the row of maps: the original, the heat map with its controls, the ROIs and patches."""
    gr.Markdown("### Where the model looked")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=340):
            panel_title("Original (the model's view of the image)")
            original = _map_image("original", "original")
        with gr.Column(min_width=340):
            panel_title("Heat map of the answer")
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
            panel_title(f"Regions of interest{info('ROI')} (1 = most attended)")
            rois = _map_image("regions of interest", "rois")
            panel_title(
                "The regions as the local network saw them (rank · attention weight · size in pixels)"
            )
            crops = gr.Gallery(  # 3 a row fit the column (more overflowed it, and the label hid the top)
                label="ROI patches",
                show_label=False,
                columns=3,
                height="auto",
                buttons=["fullscreen"],
                elem_id="crops",
            )
    return MapPanel(original, heat_choice, heat, opacity, rois, crops)
