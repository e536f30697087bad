"""The Gradio Blocks of DiffMIC Explorer: the Diagnose, Learn and Evaluate tabs.

Layout of each tab in ``diagnose_tab``, ``learn_tab`` and ``evaluation_tab``; handlers in ``diagnose``,
``learn`` and ``evaluation``. The glossary (``glossary``) sits under the tabs, the same under each.
Endpoints: ``/diagnose`` (the streamed run of the Run button) and ``/predict`` (one JSON answer,
``DiffMICOutput.to_json()``, the same object as ``python -m diffmic predict --json``) are public; the rest
are UI-only.
"""

from __future__ import annotations

import gradio as gr

from .diagnose import Diagnosis
from .diagnose_tab import build_diagnose_tab
from .evaluation import Evaluation
from .evaluation_tab import build_evaluate_tab
from .glossary import build_glossary, info
from .learn import Lessons
from .learn_tab import build_learn_tab
from .models import ModelRegistry
from .settings import Settings, load_settings

INTRO = (
    "# DiffMIC Explorer\n"
    "DiffMIC (Yang et al., MICCAI 2023) classifies a medical image by **denoising its label**: a guidance "
    f"network{info('DCG')} looks at the whole image and at its most telling regions and makes a first guess "
    f"(the prior{info('prior')}); a diffusion model then starts from noise around that guess and removes the "
    "noise step by step until class probabilities are left."
)


def build_demo(settings: Settings | None = None, registry: ModelRegistry | None = None) -> gr.Blocks:
    """Build the app (nothing is loaded or launched here)."""
    settings = settings or load_settings()
    registry = registry or ModelRegistry(settings)
    with gr.Blocks(title="DiffMIC Explorer", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(registry.status_markdown(), elem_id="model-status")
        with gr.Tabs():
            with gr.Tab("Diagnose", id="diagnose"):
                build_diagnose_tab(Diagnosis(registry), registry, settings)
            with gr.Tab("Learn", id="learn") as learn_tab:
                build_learn_tab(Lessons(registry, settings), registry, learn_tab)
            with gr.Tab("Evaluate", id="evaluate"):
                build_evaluate_tab(Evaluation(registry), registry)
        build_glossary()
    return demo
