"""Pieces shared by the tabs: the look (theme, CSS), the disclaimer, the error box, the model menu."""

from __future__ import annotations

import gradio as gr

from . import report
from .models import ModelRegistry

CSS = """
.disclaimer {background:#fff7ed; border:1px solid #fdba74; border-radius:8px; padding:4px 12px;}
.error-box {background:#fef2f2; border:1px solid #f87171; border-radius:8px; padding:4px 12px;}
.error-box p {color:#991b1b !important;}
#counter {min-height:1.6em;}
"""
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate")


def disclaimer() -> gr.Markdown:
    """The disclaimer box (on every tab)."""
    return gr.Markdown(report.disclaimer_markdown(), elem_classes="disclaimer")


def error_box(elem_id: str) -> gr.Markdown:
    """A hidden red box for messages about bad inputs."""
    return gr.Markdown("", label="error", visible=False, elem_classes="error-box", elem_id=elem_id)


def show_error(n_outputs: int, message: str) -> tuple:
    """Outputs of a handler that failed: every output left as it is but the last, the error box, shown."""
    return (
        *(gr.skip() for _ in range(n_outputs - 1)),
        gr.update(value=report.error_markdown(message), visible=True),
    )


def model_dropdown(registry: ModelRegistry, elem_id: str) -> gr.Dropdown:
    """Bundled models, or any Hub repo id typed in."""
    return gr.Dropdown(
        registry.choices(),
        value=registry.default_choice(),
        label="Model",
        info="A bundled model, or type a Hugging Face Hub repo id (org/name).",
        allow_custom_value=True,
        elem_id=elem_id,
    )
