"""The ROI pictures: twelve overlapping boxes stay readable (a colour per rank, numbers in tabs that do not
cover each other), and the patches are enlarged pixel for pixel with their source size in the caption."""

from __future__ import annotations

from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest

from app.maps import CROP_FRAME, CROP_SIDE, roi_crops
from diffmic.drawing import (
    ROI_COLOURS,
    draw_rois,
    label_font_size,
    label_tabs,
    pixel_patch,
    roi_colour,
    roi_tabs,
    text_colour,
)

GREY = (128, 128, 128)


def overlapping_boxes() -> np.ndarray:
    """Twelve 64-px boxes on a 32-px lattice of a 256-px image: each overlaps several others."""
    corners = [(32 * (i % 5), 32 * (i // 5) + 16 * (i % 2)) for i in range(12)]
    return np.array([(x, y, x + 64, y + 64) for x, y in corners])


def test_twelve_ranks_have_twelve_colours_far_apart():
    colours = [roi_colour(r) for r in range(12)]
    assert len(set(colours)) == 12 and roi_colour(12) == roi_colour(0)  # then they cycle
    closest = min(np.linalg.norm(np.subtract(a, b)) for a, b in combinations(colours, 2))
    assert closest > 80  # RGB distance: no two ranks look alike
    for c in colours:  # the number is black on a light tab, white on a dark one
        assert text_colour(c) in ((0, 0, 0), (255, 255, 255))
    assert text_colour((255, 255, 255)) == (0, 0, 0) and text_colour((0, 0, 160)) == (255, 255, 255)


def test_twelve_overlapping_boxes_keep_their_numbers_apart_and_legible():
    side = 512
    boxes = overlapping_boxes() * 2.0
    assert (
        sum(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for a, b in combinations(boxes, 2))
        > 12
    )
    size = label_font_size(side)
    tabs = label_tabs([tuple(b) for b in boxes], [(size + 8, size + 8)] * 12, side)
    for a, b in combinations(tabs, 2):  # no number hides another
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    for (x0, y0, x1, y1), (bx0, by0, bx1, by1) in zip(
        tabs, boxes, strict=True
    ):  # each in a corner of its box
        assert bx0 <= x0 and x1 <= bx1 and by0 <= y0 and y1 <= by1
        assert x0 in (bx0, bx1 - (x1 - x0)) and y0 in (by0, by1 - (y1 - y0))
    assert size >= 28  # 1/16 of the image: digits ~25 px high where the page shows it 400 px wide


def test_drawn_boxes_show_every_rank_colour_and_a_number_in_each_tab():
    pixels = np.full((256, 256, 3), GREY, np.uint8)
    boxes = overlapping_boxes()
    img = draw_rois(pixels, boxes, side=512)
    plain = draw_rois(pixels, boxes[:0], side=512)
    assert img.shape == (512, 512, 3) and (plain == GREY).all()
    for rank in range(12):
        assert np.all(img == roi_colour(rank), axis=-1).sum() > 200, f"rank {rank + 1}'s colour is missing"
    tabs = roi_tabs(boxes, 256, 512)
    ink = []
    for rank, (x0, y0, x1, y1) in enumerate(tabs):
        tab = img[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
        fill = np.all(tab == roi_colour(rank), axis=-1).mean()
        digits = np.all(tab == text_colour(roi_colour(rank)), axis=-1).mean()
        assert fill > 0.4 and digits > 0.05, f"rank {rank + 1}: its tab is not its colour with a number on it"
        assert y1 - y0 >= 20  # legible: the page shows the 512-px picture about 400 px wide
        ink.append(digits * tab.shape[0] * tab.shape[1])
    assert ink[10] > ink[0]  # "11" has more ink than "1": the numbers are drawn, not only the tabs


def test_patches_are_enlarged_pixel_for_pixel_in_a_frame_of_their_colour():
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    big = pixel_patch(patch, 192, (255, 0, 255), 6)
    k = 192 // 64
    assert big.shape == (64 * k + 12, 48 * k + 12, 3)
    inner = big[6:-6, 6:-6]
    blocks = inner.reshape(64, k, 48, k, 3)
    assert (blocks == patch[:, None, :, None, :]).all()  # every source pixel is a k x k block, unchanged
    frame = np.ones(big.shape[:2], bool)
    frame[6:-6, 6:-6] = False
    assert (big[frame] == (255, 0, 255)).all()
    assert np.array_equal(pixel_patch(patch, 40), patch)  # never shrunk, never smoothed
    assert pixel_patch(patch, 150).shape == (128, 96, 3)  # whole factors only (150 // 64 = 2)


@pytest.mark.parametrize("shape", [(64, 64), (32, 48)])
def test_crop_captions_give_rank_weight_and_source_size(shape):
    h, w = shape
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3)]
    output = SimpleNamespace(rois=SimpleNamespace(crops=crops, attention=np.array([0.5, 0.3, 0.2])))
    shown = roi_crops(output)
    assert [caption for _, caption in shown] == [
        f"{r} · {a:.2f} · {w}×{h} px" for r, a in zip((1, 2, 3), (0.5, 0.3, 0.2), strict=True)
    ]
    k = CROP_SIDE // max(h, w)
    for rank, ((image, _), crop) in enumerate(zip(shown, crops, strict=True)):
        assert image.shape == (h * k + 2 * CROP_FRAME, w * k + 2 * CROP_FRAME, 3)
        assert tuple(image[0, 0]) == roi_colour(rank) == ROI_COLOURS[rank]  # framed in its box's colour
        inner = image[CROP_FRAME:-CROP_FRAME, CROP_FRAME:-CROP_FRAME]
        assert np.array_equal(inner[::k, ::k], crop) and np.array_equal(inner[k - 1 :: k, k - 1 :: k], crop)
