"""Ending a streamed run from other events: Stop, and new inputs that make its results stale.

Gradio's own ``cancels`` kills the generator between two frames, so the page keeps the last progress
frame ("Step 600 of 1000…") for ever. Instead:

- Stop bumps the session's stop count; the run, which noted the count when its button was pressed
  (its ``token``), ends at its next step with a "Stopped at step N of T" frame. A run still waiting in
  the queue when Stop is pressed stops before its first step.
- A run records its image and model as what the page shows (``shown``), and so does every new upload
  or model; a run whose image or model is no longer the one on the page ends without a frame, so it
  cannot write over the cleared page. Comparing the inputs, not the order of events, keeps a late
  preview of the same image from ending its own run; images are compared by content
  (``uploads.upload_key``), since one file may arrive twice under two temporary paths.
"""

from __future__ import annotations

import threading
from typing import Any

LOCAL = "local"  # the session key of calls without a request (tests, scripts)


def session_of(request: Any) -> str:
    """The session key of a Gradio request (``LOCAL`` without one)."""
    return str(getattr(request, "session_hash", None) or LOCAL)


class RunControl:
    """Stop requests and the current inputs of each session (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: dict[str, int] = {}
        self._inputs: dict[str, dict[str, str]] = {}

    def token(self, session: str) -> int:
        """The session's stop count now; a run started with this token stops once the count moves on."""
        with self._lock:
            return self._stops.get(session, 0)

    def stop(self, session: str) -> None:
        """Ask the session's running (or queued) run to stop."""
        with self._lock:
            self._stops[session] = self._stops.get(session, 0) + 1

    def shown(self, session: str, **inputs: str) -> None:
        """Record what the page now shows (``image=…``, ``model=…``)."""
        with self._lock:
            self._inputs.setdefault(session, {}).update({k: str(v) for k, v in inputs.items()})

    def is_shown(self, session: str, **inputs: str) -> bool:
        """Whether the page already shows these inputs (a preview of the same image again changes nothing)."""
        with self._lock:
            current = self._inputs.get(session, {})
            return all(key in current and current[key] == str(value) for key, value in inputs.items())

    def verdict(self, session: str, token: int, **inputs: str) -> str | None:
        """None while the run may go on; ``"stopped"`` after Stop; ``"stale"`` when the page shows other
        inputs than the run's."""
        with self._lock:
            current = self._inputs.get(session, {})
            if any(key in current and current[key] != str(value) for key, value in inputs.items()):
                return "stale"
            return "stopped" if self._stops.get(session, 0) > token else None
