"""Each session's latest upload, decoded once: the preview decodes it, the run and the sampler switch's rerun
use that decode (``diffmic.imageio.DecodedImage``, which the pipeline does not check again).

Every guard against a bad file (wrong type, corrupt, too big) runs in that one decode
(``controls.read_upload``); its refusal is kept too, so the run says the same without reading the file
again. A session keeps only its latest upload; the oldest sessions' images are let go once the kept images
pass ``KEPT_PIXELS`` pixels or ``KEPT_SESSIONS`` sessions. A file is recognised by its path, size and
modification time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from diffmic.imageio import DecodedImage

from .controls import read_upload, upload_path
from .errors import UserError

KEPT_SESSIONS = 32
KEPT_PIXELS = 64_000_000  # about 190 MB of RGB pixels over all sessions

Decoded = DecodedImage | UserError  # a decode's outcome: the image, or what is wrong with the file


def decode_upload(file: Any) -> DecodedImage:
    """One decode of an upload (``read_upload``: every check), marked as checked; a UserError if it is bad."""
    return DecodedImage(read_upload(file))


def file_key(path: str) -> tuple:
    """What tells one file from another: its path, size and modification time (the path alone if gone)."""
    try:
        info = os.stat(path)
    except OSError:
        return (path,)
    return (path, info.st_size, info.st_mtime_ns)


class Uploads:
    """The decoded latest upload of each session (thread-safe; a session's upload is decoded at most once,
    even when its preview and its run ask at the same time)."""

    def __init__(
        self, kept_sessions: int = KEPT_SESSIONS, kept_pixels: int = KEPT_PIXELS, decode=decode_upload
    ):
        self.kept_sessions = kept_sessions
        self.kept_pixels = kept_pixels
        self._decode = decode
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[tuple, Decoded]] = OrderedDict()
        self._session_locks: dict[str, threading.Lock] = {}

    def decoded(self, session: str, file: Any) -> DecodedImage:
        """The session's upload ``file`` decoded (once), or the UserError saying what is wrong with it."""
        path = upload_path(file)
        if not path:
            return self._decode(file)  # raises: nothing uploaded
        key = file_key(path)
        with self._lock:
            session_lock = self._session_locks.setdefault(session, threading.Lock())
        with session_lock:
            outcome = self._lookup(session, key)
            if outcome is None:
                try:
                    outcome = self._decode(file)
                except UserError as err:
                    outcome = err
                self._keep(session, key, outcome)
        if isinstance(outcome, UserError):
            raise UserError(str(outcome))
        return outcome

    def _lookup(self, session: str, key: tuple) -> Decoded | None:
        with self._lock:
            kept = self._kept.get(session)
            if kept is None or kept[0] != key:
                return None
            self._kept.move_to_end(session)
            return kept[1]

    def _keep(self, session: str, key: tuple, outcome: Decoded) -> None:
        with self._lock:
            self._kept[session] = (key, outcome)
            self._kept.move_to_end(session)
            while len(self._kept) > 1 and (
                len(self._kept) > self.kept_sessions or self._pixels() > self.kept_pixels
            ):
                gone, _ = self._kept.popitem(last=False)
                self._session_locks.pop(gone, None)

    def _pixels(self) -> int:
        sizes = [o.size for _, o in self._kept.values() if isinstance(o, DecodedImage)]
        return sum(w * h for w, h in sizes)
