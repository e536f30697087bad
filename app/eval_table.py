"""The Evaluate tab's per-image table: one row per image (file, true class, predicted class, [probability,]
correct), its columns sized to their text.

Columns are as wide as their longest word (in pixels of the table's font), never a share of the box: on a
phone a share of 330 px cut "Moderate" to "Modera" and "Proliferative" to "Prolif"; sized to the words, the
table is wider than the phone and scrolls sideways (with a shadow saying so) and no word is cut.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

TABLE_HEADERS = ["file", "true class", "predicted class", "correct"]
CHAR_PX = 8.8  # the width of one character of the table's font (monospace, 14 px), rounded up
CELL_PADDING_PX = 30  # a cell's padding and border, both sides
MIN_COLUMN_PX = 64
MAX_COLUMN_PX = 320  # a longer word (a deep file path) breaks; it is not cut


def column_widths(headers: list[str], rows: list[list]) -> list[str]:
    """Each column as wide as its longest word (header or cell), within the minimum and maximum."""
    widths = []
    for j, header in enumerate(headers):
        words = [w for text in (header, *(str(r[j]) for r in rows)) for w in text.split()]
        px = max((len(w) for w in words), default=0) * CHAR_PX + CELL_PADDING_PX
        widths.append(f"{round(min(max(px, MIN_COLUMN_PX), MAX_COLUMN_PX))}px")
    return widths


def table_update(headers: list[str], rows: list[list]) -> dict:
    """The Dataframe's update: the rows ("yes"/"no" for correct), their headers, columns sized to the text."""
    shown = [[*r[:-1], "yes" if r[-1] else "no"] for r in rows]
    return gr.update(value=shown, headers=headers, column_widths=column_widths(headers, shown))


def per_image_rows(
    result: dict[str, Any], rel_paths: list[str], names: list[str]
) -> tuple[list[str], list[list]]:
    """Table headers and one row per image: file, true class, predicted class, [probability,] correct."""
    probs = result.get("probabilities")  # per-image mean probabilities, when evaluate() provides them
    headers = TABLE_HEADERS[:3] + (["probability"] if probs is not None else []) + TABLE_HEADERS[3:]
    rows = []
    for i, (true, pred) in enumerate(zip(result["labels"], result["predictions"], strict=True)):
        extra = [round(float(probs[i][pred]), 3)] if probs is not None else []
        rows.append([rel_paths[i], names[true], names[pred], *extra, bool(true == pred)])
    return headers, rows
