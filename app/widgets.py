"""Pieces shared by the tabs: the look (theme, CSS), the disclaimer, the error box, the model menu."""

from __future__ import annotations

from typing import Any

import gradio as gr

from diffmic.diffusion import sampler_class

from . import report
from .models import ModelRegistry
from .settings import MAX_STEPS

# System fonts only (no web font to download): the page renders the same offline.
FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "Noto Sans",
         "Liberation Sans", "DejaVu Sans", "sans-serif"]  # fmt: skip
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "DejaVu Sans Mono",
              "monospace"]  # fmt: skip
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate", font=FONTS, font_mono=MONO_FONTS)

CSS = """
.block.disclaimer {background:#fff7ed; border:1px solid #fdba74; border-radius:8px; padding:2px 12px;}
.block.error-box {background:#fef2f2; border:1px solid #f87171; border-radius:8px; padding:2px 12px;}
.block.error-box p {color:#991b1b !important;}
.answer-card .cannot-assess {background:#fffbeb; border:2px solid #d97706; border-radius:8px;
  padding:4px 12px; margin:6px 0;}
.answer-card .cannot-assess p {color:#78350f !important;}
/* the answer of an image the model cannot assess: folded away, greyed */
.answer-card details.unreliable {color:#6b7280; border:1px dashed #cbd5e1; border-radius:6px;
  padding:2px 10px;}
.answer-card details.unreliable summary {cursor:pointer; font-weight:600; color:#475569;}
.answer-card details.unreliable > :not(summary) {opacity:0.7;}
.block.answer-card {border:1px solid #cbd5e1; border-radius:8px; padding:2px 14px; background:#f8fafc;}
.block.answer-card h3 {margin-top:8px !important;}
#counter {min-height:1.6em;}
.map-title p {font-weight:600; margin:0 !important;}
.map-note p {font-size:0.85em; color:#475569 !important; margin:0 !important;}
.colour-scale {max-width:420px; margin:2px 0 6px 0;}
.colour-bar {height:14px; border-radius:3px; border:1px solid #cbd5e1;}
.colour-ends {display:flex; justify-content:space-between; font-size:0.8em; color:#475569;}
/* tables: wrap between words only, never inside a word or a number (numbers hold no-break spaces);
   scroll sideways on a screen too narrow even for that */
.prose table {display:block; max-width:100%; overflow-x:auto;}
.prose th, .prose td {word-break:keep-all !important; overflow-wrap:normal !important;
  hyphens:none !important;}
#eval-table th, #eval-table td, #eval-table span {word-break:normal !important;
  overflow-wrap:normal !important; hyphens:none !important;}
/* output files are downloads, not uploads: no "remove" buttons */
#downloads .label-clear-button, #eval-csv .label-clear-button {display:none !important;}
/* gallery captions in full, on two lines if need be */
#examples .caption-label, #crops .caption-label {white-space:normal !important; overflow:visible !important;
  text-overflow:clip !important; line-height:1.15;}
/* the ROI patches in full, however many the model crops: no inner scroll area cutting off the last row */
#crops .fixed-height {max-height:none !important; min-height:0 !important;}
"""


def disclaimer() -> gr.Markdown:
    """The disclaimer box (on every tab)."""
    return gr.Markdown(report.disclaimer_markdown(), elem_classes="disclaimer")


def error_box(elem_id: str) -> gr.Markdown:
    """A hidden red box for messages about bad inputs."""
    return gr.Markdown("", label="error", visible=False, elem_classes="error-box", elem_id=elem_id)


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


def steps_range(registry: ModelRegistry, choice: str, sampler: str) -> dict[str, Any]:
    """The Steps slider for a model and sampler: up to T; the sampler's ``default_steps`` (None: all T)."""
    T = registry.timesteps(choice) or MAX_STEPS
    default = sampler_class(sampler).default_steps
    value = T if default is None else min(default, T)
    return dict(maximum=max(T, 1), value=value)


def steps_update(registry: ModelRegistry, choice: str, sampler: str) -> dict[str, Any]:
    """``steps_range`` as an update of the slider."""
    return gr.update(**steps_range(registry, choice, sampler))
