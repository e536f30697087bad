"""Handler results as named values: a tuple in the order a tab wired its outputs, ``gr.skip()`` for those
a result does not change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr


def named(names: Sequence[str], **values: Any) -> tuple:
    """A tuple in the order of ``names``; outputs not given are left unchanged. An unknown name raises."""
    unknown = set(values) - set(names)
    if unknown:
        raise KeyError(f"unknown outputs {sorted(unknown)}")
    return tuple(values.get(name, gr.skip()) for name in names)
