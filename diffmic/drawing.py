"""Drawing the explanations: heat-map colouring and overlays, ROI boxes and their patches
(pytorch-grad-cam keeps its ``utils/image.py`` apart from its CAM classes in the same way). Pure
NumPy/PIL; no model here.

ROI boxes are told apart by colour (``roi_colour``: one per rank, a black outline around each so that
overlapping boxes stay separate) and by their rank number, written large in a tab of the box's colour
with a black border; a number's tab goes to a free corner of its box when another number already sits
in the first one. A patch is enlarged pixel for pixel (``pixel_patch``: nearest neighbour, an integer
factor), framed in its box's colour.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

DEFAULT_CMAP = "inferno"
# One colour per rank, bright enough on fundus orange, skin pink and ultrasound grey, and apart from each
# other (rank 1 keeps its yellow); ranks past 12 cycle.
ROI_COLOURS = (
    (255, 221, 0),  # 1 yellow
    (0, 229, 255),  # 2 cyan
    (255, 64, 255),  # 3 magenta
    (64, 255, 64),  # 4 green
    (255, 255, 255),  # 5 white
    (60, 110, 255),  # 6 blue
    (255, 120, 0),  # 7 orange
    (170, 90, 255),  # 8 violet
    (0, 160, 120),  # 9 teal
    (255, 80, 110),  # 10 rose
    (0, 0, 160),  # 11 navy
    (150, 100, 40),  # 12 brown
)
TOP_COLOUR = ROI_COLOURS[0]
OUTLINE = (0, 0, 0)


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


def roi_colour(rank: int) -> tuple[int, int, int]:
    """The colour of the box ranked ``rank`` (0 = most attended)."""
    return ROI_COLOURS[rank % len(ROI_COLOURS)]


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    lin = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in background]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return (0, 0, 0) if luminance > 0.179 else (255, 255, 255)


def _overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_font_size(side: int) -> int:
    """The size of the rank numbers on an image ``side`` pixels wide (1/16 of it, at least 14)."""
    return max(14, side // 16)


def label_tabs(
    boxes: list[tuple[float, ...]], sizes: list[tuple[int, int]], side: int
) -> list[tuple[int, ...]]:
    """Where each rank number's tab goes, (x0, y0, x1, y1): the first corner of its box (inside: top-left,
    top-right, bottom-left, bottom-right; kept on the image) where its w x h tab covers no tab of a better
    rank; top-left when every corner is taken. ``boxes`` in rank order, on a ``side``-pixel image."""
    taken: list[tuple[int, ...]] = []
    for (x0, y0, x1, y1), (w, h) in zip(boxes, sizes, strict=True):
        corners = [(x0, y0), (x1 - w, y0), (x0, y1 - h), (x1 - w, y1 - h)]
        rects = []
        for x, y in corners:
            x, y = int(round(min(max(x, 0), side - w))), int(round(min(max(y, 0), side - h)))
            rects.append((x, y, x + w, y + h))
        taken.append(next((r for r in rects if not any(_overlaps(r, t) for t in taken)), rects[0]))
    return taken


def _numbers(boxes: list[tuple[float, ...]], side: int) -> tuple[ImageFont.ImageFont, int, list, list]:
    """The font, padding, text extents and tabs of the rank numbers of ``boxes`` on a ``side``-px image."""
    font = _font(label_font_size(side))
    pad = max(3, side // 128)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    extents = [measure.textbbox((0, 0), str(rank + 1), font=font) for rank in range(len(boxes))]
    sizes = [(x1 - x0 + 2 * pad, y1 - y0 + 2 * pad) for x0, y0, x1, y1 in extents]
    return font, pad, extents, label_tabs(boxes, sizes, side)


def roi_tabs(boxes: np.ndarray, source_side: int, side: int | None = None) -> list[tuple[int, ...]]:
    """Where ``draw_rois`` writes each rank number (x0, y0, x1, y1) on its ``side``-px picture."""
    side = side or source_side
    scale = side / source_side
    return _numbers([tuple(float(v) * scale for v in box) for box in boxes], side)[3]


def draw_rois(pixels: np.ndarray, boxes: np.ndarray, side: int | None = None) -> np.ndarray:
    """The image (resized to ``side``) with ROI boxes (given in rank order) numbered 1 = most attended.

    Each box has its rank's colour (``roi_colour``) inside a black outline; the numbers are drawn last,
    over every box, in tabs of the box's colour (``label_font_size``), each at a free corner (``label_tabs``).
    """
    side = side or pixels.shape[0]
    scale = side / pixels.shape[0]
    img = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    width = max(2, side // 170)
    scaled = [tuple(float(v) * scale for v in box) for box in boxes]
    for rank in reversed(range(len(scaled))):  # the top-ranked box is drawn last, on top
        x0, y0, x1, y1 = scaled[rank]
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=OUTLINE, width=width + 2)
        draw.rectangle([x0 + 1, y0 + 1, x1 - 2, y1 - 2], outline=roi_colour(rank), width=width)
    font, pad, extents, tabs = _numbers(scaled, side)
    for rank in reversed(range(len(scaled))):  # a number of a better rank is never hidden
        x0, y0, x1, y1 = tabs[rank]
        colour = roi_colour(rank)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour, outline=OUTLINE, width=max(1, pad // 2))
        tx0, ty0 = extents[rank][:2]
        draw.text((x0 + pad - tx0, y0 + pad - ty0), str(rank + 1), fill=text_colour(colour), font=font)
    return np.asarray(img)


def pixel_patch(
    patch: np.ndarray, side: int, colour: tuple[int, int, int] | None = None, frame: int = 0
) -> np.ndarray:
    """An RGB patch enlarged pixel for pixel: each source pixel becomes a k x k block of equal pixels
    (k = side // the patch's longer edge, at least 1: nearest neighbour, no smoothing), in a frame of
    ``frame`` pixels of ``colour`` when one is given."""
    k = max(1, side // max(patch.shape[:2]))
    big = np.repeat(np.repeat(np.asarray(patch, dtype=np.uint8), k, axis=0), k, axis=1)
    if colour is None or frame <= 0:
        return big
    out = np.empty((big.shape[0] + 2 * frame, big.shape[1] + 2 * frame, 3), np.uint8)
    out[:] = colour
    out[frame:-frame, frame:-frame] = big
    return out


def upscale(image: np.ndarray, side: int) -> np.ndarray:
    """Resize an RGB image to side x side for display (bilinear)."""
    if image.shape[0] == side and image.shape[1] == side:
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))
