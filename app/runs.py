"""Stopping a streamed run from another event: a per-session count of stop requests.

Gradio's own ``cancels`` kills the generator between two frames, so the page keeps the last progress
frame ("Step 600 of 1000…") for ever. Instead, Stop bumps the session's count, and the run, which
noted the count when its button was pressed (``token``), ends at its next step with a "Stopped at step
N of T" frame. A new upload or model bumps it too (``supersede``): that run ends without a frame, so it
cannot write over the cleared page.
"""

from __future__ import annotations

import threading
from typing import Any

LOCAL = "local"  # the session key of calls without a request (tests, scripts)


def session_of(request: Any) -> str:
    """The session key of a Gradio request (``LOCAL`` without one)."""
    return str(getattr(request, "session_hash", None) or LOCAL)


class StopSwitch:
    """Stop requests per session (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}
        self._superseded: dict[str, int] = {}

    def token(self, session: str) -> int:
        """The session's count now; a run started with this token stops once the count moves on."""
        with self._lock:
            return self._count.get(session, 0)

    def stop(self, session: str) -> None:
        """Ask the session's running (or queued) run to stop and say so."""
        with self._lock:
            self._count[session] = self._count.get(session, 0) + 1

    def supersede(self, session: str) -> None:
        """Ask the session's run to stop silently: its inputs changed and the page was cleared."""
        with self._lock:
            self._count[session] = self._count.get(session, 0) + 1
            self._superseded[session] = self._count[session]

    def state(self, session: str, token: int) -> str | None:
        """None while a run with ``token`` may go on; ``"stopped"`` or ``"superseded"`` once it must end."""
        with self._lock:
            count = self._count.get(session, 0)
            if count <= token:
                return None
            return "superseded" if self._superseded.get(session) == count else "stopped"
