"""The one error wrapper of the app's handlers: expected problems become a message on the page, bugs are
logged and reported in one line, and the page is never left half-updated.

A handler wrapped by ``on_error(render)`` returns (or, for a generator, yields) ``render(message)``
instead of raising; ``render`` builds the handler's outputs for an error (the message shown, the stale
results cleared).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from diffmic.hub import ModelLoadError
from diffmic.imageio import ImageLoadError

log = logging.getLogger(__name__)


class UserError(ValueError):
    """A problem with the request that the page shows as is."""


EXPECTED: tuple[type[Exception], ...] = (UserError, ModelLoadError, ImageLoadError)


def error_markdown(message: str) -> str:
    """The text of the red error box (no emoji: they render as empty boxes without colour fonts)."""
    return f"**Cannot run:** {message}"


def message_of(err: Exception, action: str, expected: tuple[type[Exception], ...] = EXPECTED) -> str:
    """The page's sentence for an exception: as is when expected, else logged and named."""
    if isinstance(err, expected):
        return str(err)
    log.error("%s failed", action, exc_info=err)
    return f"the {action} failed ({type(err).__name__}: {err})"


def on_error(
    render: Callable[[str], Any],
    action: str,
    expected: tuple[type[Exception], ...] = EXPECTED,
    toast: bool = True,
) -> Callable[[Callable], Callable]:
    """Decorate a handler (function or generator) so a failure returns/yields ``render(message)``.

    ``render`` may raise instead (``raise_api_error`` for API endpoints). ``toast`` also pops the
    message up. The signature is kept (``functools.wraps``), so Gradio still injects ``gr.Request``
    and ``gr.Progress``.
    """

    def failed(err: Exception) -> Any:
        message = message_of(err, action, expected)
        if toast:
            gr.Warning(message)
        return render(message)

    def decorate(handler: Callable) -> Callable:
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def stream(*args: Any, **kwargs: Any):
                try:
                    yield from handler(*args, **kwargs)
                except Exception as err:  # noqa: BLE001 - the page must show what happened
                    yield failed(err)

            return stream

        @functools.wraps(handler)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Exception as err:  # noqa: BLE001
                return failed(err)

        return call

    return decorate


def raise_api_error(message: str) -> None:
    """``render`` of an API endpoint: the caller gets the message as the error."""
    raise gr.Error(message)
