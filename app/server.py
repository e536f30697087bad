"""Serving: the request queue, upload limit, theme, torch threads, freed memory handed back (``app.heap``),
and a warm model before the first click.

With batching on, the endpoints that feed ``diffmic.batching`` (``BATCHED_ENDPOINTS``) may have
``BATCHED_CONCURRENCY`` requests in flight: they wait on the registry's batcher, whose workers own the cores.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gradio as gr
import torch

from . import glossary
from .heap import start_trimming
from .models import ModelRegistry, warm_up
from .settings import (
    BATCHED_CONCURRENCY,
    BATCHED_ENDPOINTS,
    CONCURRENCY_LIMIT,
    MAX_FILE_SIZE,
    QUEUE_SIZE,
    Settings,
    load_settings,
    server_port,
)
from .widgets import CSS, THEME

log = logging.getLogger(__name__)


def warm(registry: ModelRegistry) -> None:
    """Load the default model and run it once; a missing model is only logged (the page says so)."""
    try:
        warm_up(registry.get(registry.default_choice()).pipe)
    except Exception as err:  # noqa: BLE001 - the app must start without models
        log.warning("no model warmed up: %s", err)


def route_to_batcher(demo: gr.Blocks, limit: int = BATCHED_CONCURRENCY) -> None:
    """Let the batched endpoints have ``limit`` requests in flight (their work is queued in the batcher)."""
    for fn in demo.fns.values():
        if fn.api_name in BATCHED_ENDPOINTS:
            fn.concurrency_limit = limit


def launch(
    demo: gr.Blocks,
    registry: ModelRegistry | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> tuple:
    """Queue and launch ``demo`` on GRADIO_SERVER_NAME (default 0.0.0.0) and GRADIO_SERVER_PORT (7860)."""
    settings = settings or load_settings()
    torch.set_num_threads(settings.torch_threads)
    start_trimming(settings.trim_every_s)
    if registry is not None:
        warm(registry)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    if registry is not None and registry.batcher is not None:
        route_to_batcher(demo)
    options: dict[str, Any] = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=server_port(),
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(settings.assets_dir)],
        theme=THEME,
        css=CSS + glossary.CSS,
        show_error=True,
        footer_links=["api", "gradio"],
        state_session_capacity=settings.max_sessions,
    )
    options.update(overrides)
    return demo.launch(**options)
