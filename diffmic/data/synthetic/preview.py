"""Save a contact sheet of a synthetic task so humans can look at it.

    python -m diffmic.data.synthetic.preview TASK OUT.png [--seed 0] [--size 128] [--per-class 4]

One row per class; each example is shown plain and again with its ground-truth mask outlined.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import GENERATORS, generate_sample, get_task, label_of
from ._draw import outline

OUTLINE_RGB = (0, 255, 255)


def pick_indices(task: str, seed: int, per_class: int) -> list[list[int]]:
    """The first ``per_class`` sample indices of each class."""
    k = get_task(task).num_classes
    rows: list[list[int]] = [[] for _ in range(k)]
    index = 0
    while min(len(r) for r in rows) < per_class:
        label = label_of(task, index, seed)
        if len(rows[label]) < per_class:
            rows[label].append(index)
        index += 1
    return rows


def with_outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of the image with the mask boundary drawn in cyan."""
    out = image.copy()
    out[outline(mask)] = OUTLINE_RGB
    return out


def contact_sheet(
    task: str, seed: int = 0, size: int = 128, per_class: int = 4, zoom: int = 2
) -> Image.Image:
    """The grid image: a label column, then per example the plain image and the outlined one."""
    spec = get_task(task)
    rows = pick_indices(task, seed, per_class)
    tile, gap, label_w = size * zoom, 4, 150
    width = label_w + per_class * (2 * tile + 3 * gap)
    sheet = Image.new("RGB", (width, len(rows) * (tile + gap) + gap), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for r, indices in enumerate(rows):
        top = gap + r * (tile + gap)
        draw.text((8, top + tile // 2 - 8), f"{r}: {spec.class_names[r]}", fill=(235, 235, 235), font=font)
        for c, index in enumerate(indices):
            s = generate_sample(task, index, seed, size)
            left = label_w + c * (2 * tile + 3 * gap)
            for j, pixels in enumerate((s.image, with_outline(s.image, s.mask))):
                im = Image.fromarray(pixels).resize((tile, tile), Image.Resampling.NEAREST)
                sheet.paste(im, (left + j * (tile + gap), top))
    return sheet


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Save a grid of examples per class, with mask outlines.")
    parser.add_argument("task", choices=sorted(GENERATORS))
    parser.add_argument("out", type=Path, help="output PNG path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--zoom", type=int, default=2, help="pixel magnification in the sheet")
    args = parser.parse_args(argv)
    contact_sheet(args.task, args.seed, args.size, args.per_class, args.zoom).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
