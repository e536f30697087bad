"""Drawing the explanations: heat-map colouring and overlays, ROI boxes (pytorch-grad-cam keeps its
``utils/image.py`` apart from its CAM classes in the same way). Pure NumPy/PIL; no model here."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

DEFAULT_CMAP = "inferno"
TOP_COLOUR = (255, 221, 0)
OTHER_COLOUR = (0, 229, 255)


def resize_map(heat: np.ndarray, size: int) -> np.ndarray:
    """A 2-D map rescaled to [0, 1] and resized (bilinear) to size x size, float32."""
    h = np.asarray(heat, dtype=np.float32)
    h = (h - h.min()) / max(float(h.max() - h.min()), 1e-6)
    img = Image.fromarray(h, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img), 0.0, 1.0)


def colourise(heat: np.ndarray, size: int, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Upsample a 2-D map to size x size and colour it: uint8 (size, size, 3)."""
    return (colormaps[cmap](resize_map(heat, size))[..., :3] * 255).astype(np.uint8)


def overlay(
    pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """Blend a heat map over an RGB uint8 image; ``alpha`` 0 shows the image only, 1 the map only."""
    colour = colourise(heat, pixels.shape[0], cmap).astype(np.float32)
    blended = pixels.astype(np.float32) * (1 - alpha) + colour * alpha
    return blended.clip(0, 255).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_rois(pixels: np.ndarray, boxes: np.ndarray, side: int | None = None) -> np.ndarray:
    """The image (resized to ``side``) with ROI boxes (given in rank order) numbered 1 = most attended.

    Labels sit in a filled tab inside each box's top-left corner, sized to stay legible.
    """
    side = side or pixels.shape[0]
    scale = side / pixels.shape[0]
    img = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    font = _font(max(12, side // 28))
    width = max(2, side // 160)
    for rank in reversed(range(len(boxes))):  # the top-ranked box is drawn last, on top
        x0, y0, x1, y1 = (float(v) * scale for v in boxes[rank])
        colour = TOP_COLOUR if rank == 0 else OTHER_COLOUR
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width + (rank == 0))
        label = str(rank + 1)
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), label, font=font)
        pad = max(2, width)
        draw.rectangle([x0, y0, x0 + tx1 - tx0 + 2 * pad, y0 + ty1 - ty0 + 2 * pad], fill=colour)
        draw.text((x0 + pad - tx0, y0 + pad - ty0), label, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def upscale(image: np.ndarray, side: int) -> np.ndarray:
    """Resize an RGB image to side x side for display (bilinear)."""
    if image.shape[0] == side and image.shape[1] == side:
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))
