"""Where the model looked, drawn for the page from a ``DiffMICOutput`` (``diffmic.drawing`` does the
drawing): the original, a heat map over it at a chosen opacity, the ROI boxes numbered by rank (each rank
its colour) and the crops in rank order, enlarged pixel for pixel (``CROP_SIDE``) in their box's colour
with their size in the model's pixels. Maps are drawn at ``MAP_SIDE`` pixels and shown at least 384 px
wide.

What is kept between events (the opacity slider and the map menu redraw without a new run) is a
``MapData``: the model's view of the image and the two maps. Grad-CAM needs a backward pass, so a run
does not pay for it: it is made the first time the menu asks for it, and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps

from diffmic.drawing import DEFAULT_CMAP, draw_rois, overlay, pixel_patch, roi_colour, upscale
from diffmic.pipeline import DiffMICOutput

MAP_SIDE = 512
CROP_SIDE = 192  # a patch is enlarged by a whole factor to at most this (64 px: 3 x)
CROP_FRAME = 6
DEFAULT_OPACITY = 0.5
HEAT_MAPS = {
    "DCG evidence (CAM)": "saliency",
    "Grad-CAM": "gradcam",
}
DEFAULT_HEAT = next(iter(HEAT_MAPS))
HEAT_NOTES = {
    "saliency": (
        "the DCG's class-activation map of the answer: the cells whose features raised its score against the "
        "other classes (or, where validation images chose it, against the first, healthy class)"
    ),
    "gradcam": (
        "Grad-CAM of the answer on the global network (the variant and layer each model's training chose on "
        "validation images: Grad-CAM, Grad-CAM++ or LayerCAM): the pixels whose change moves its score most"
    ),
}


@dataclass
class MapData:
    """What the map controls redraw from: the model's view (S, S, 3) and the two maps in [0, 1].

    ``make_gradcam`` computes the Grad-CAM when it is first asked for (``gradcam_map``)."""

    pixels: np.ndarray
    saliency: np.ndarray
    gradcam: np.ndarray | None = None
    make_gradcam: Callable[[], np.ndarray] | None = None

    def gradcam_map(self) -> np.ndarray | None:
        """The Grad-CAM, computed on first use and kept; None when there is no way to make it."""
        if self.gradcam is None and self.make_gradcam is not None:
            self.gradcam, self.make_gradcam = self.make_gradcam(), None
        return self.gradcam


def map_data(output: DiffMICOutput, make_gradcam: Callable[[], np.ndarray] | None = None) -> MapData:
    """The map data of a result; ``make_gradcam`` makes its Grad-CAM later, if the output has none."""
    later = None if output.gradcam is not None else make_gradcam
    return MapData(output.pixels, output.saliency, output.gradcam, later)


def original(pixels: np.ndarray) -> np.ndarray:
    """The model's view of the image, at display size."""
    return upscale(pixels, MAP_SIDE)


def heat_image(data: MapData | None, which: str, opacity: float) -> np.ndarray | None:
    """The chosen map (a ``HEAT_MAPS`` label) over the image at ``opacity`` (0: image only, 1: map only)."""
    if data is None:
        return None
    heat = data.gradcam_map() if HEAT_MAPS.get(which, "saliency") == "gradcam" else None
    if heat is None:
        heat = data.saliency
    return overlay(upscale(data.pixels, MAP_SIDE), heat, float(opacity))


def roi_image(output: DiffMICOutput) -> np.ndarray:
    """The ROI boxes over the image, numbered 1 (most attended) to K."""
    return draw_rois(output.pixels, output.rois.boxes, MAP_SIDE)


def roi_crops(output: DiffMICOutput) -> list[tuple[np.ndarray, str]]:
    """The crops in rank order, enlarged pixel for pixel and framed in their box's colour, captioned
    "rank · attention weight · width×height px" (the size of the crop in the model's view)."""
    rois = output.rois
    return [
        (
            pixel_patch(crop, CROP_SIDE, roi_colour(rank - 1), CROP_FRAME),
            f"{rank} · {weight:.2f} · {crop.shape[1]}×{crop.shape[0]} px",
        )
        for rank, (crop, weight) in enumerate(zip(rois.crops, rois.attention, strict=True), start=1)
    ]


def colour_scale_html(cmap: str = DEFAULT_CMAP, stops: int = 11) -> str:
    """A horizontal colour bar of the heat maps' colour map, from low to high."""
    colours = colormaps[cmap](np.linspace(0, 1, stops))[:, :3]
    css = ", ".join(f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})" for r, g, b in colours)
    return (
        '<div class="colour-scale" role="img" aria-label="colour scale: dark is low, bright is high">'
        f'<div class="colour-bar" style="background: linear-gradient(to right, {css});"></div>'
        '<div class="colour-ends"><span>low</span><span>high</span></div></div>'
    )
