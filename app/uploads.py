"""Each session's latest upload, decoded once: the preview decodes it, the run and the sampler switch's rerun
use that decode (``diffmic.imageio.DecodedImage``, which the pipeline does not check again).

Every guard against a bad file (wrong type, corrupt, too big) runs in that one decode
(``controls.read_upload``); its refusal is kept too, so the run says the same without reading the file
again. A session keeps only its latest upload; the oldest sessions' images are let go once the kept images
pass ``KEPT_PIXELS`` pixels or ``KEPT_SESSIONS`` sessions.

An upload is recognised by its content (``upload_key``), not its path: one file can reach the server under two
temporary paths (a drop that replaces an image sends its change event twice), and those must count as one
image — for the decode kept here and for the run it belongs to (``runs.RunControl``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from diffmic.imageio import DecodedImage

from .controls import read_upload, upload_path
from .errors import UserError

KEPT_SESSIONS = 32
KEPT_PIXELS = 64_000_000  # about 190 MB of RGB pixels over all sessions
PREVIEW_SIDE = 512  # the preview's longest side, in pixels

Decoded = DecodedImage | UserError  # a decode's outcome: the image, or what is wrong with the file


def decode_upload(file: Any) -> DecodedImage:
    """One decode of an upload (``read_upload``: every check), marked as checked; a UserError if it is bad."""
    return DecodedImage(read_upload(file))


HASHED_BYTES = 64 * 1024 * 1024  # bigger files (refused by the decode anyway) are known by path and size


def upload_key(file: Any) -> str:
    """What tells one upload from another: a digest of its bytes ("" when nothing is uploaded; the path, size
    and time when the file cannot be read or is too big to hash)."""
    path = upload_path(file)
    if not path:
        return ""
    try:
        info = os.stat(path)
    except OSError:
        return f"missing:{path}"
    if info.st_size > HASHED_BYTES:
        return f"file:{path}:{info.st_size}:{info.st_mtime_ns}"
    return _digest(path, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """The SHA-1 of a file's bytes (cached by path, size and time: a run and its preview hash once)."""
    sha = hashlib.sha1(usedforsecurity=False)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
    except OSError:
        return f"unreadable:{path}:{size}:{mtime_ns}"
    return f"sha1:{sha.hexdigest()}"


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
        self._kept: OrderedDict[str, tuple[str, Decoded]] = OrderedDict()
        self._session_locks: dict[str, threading.Lock] = {}

    def decoded(self, session: str, file: Any) -> DecodedImage:
        """The session's upload ``file`` decoded (once), or the UserError saying what is wrong with it."""
        key = upload_key(file)
        if not key:
            return self._decode(file)  # raises: nothing uploaded
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

    def _lookup(self, session: str, key: str) -> Decoded | None:
        with self._lock:
            kept = self._kept.get(session)
            if kept is None or kept[0] != key:
                return None
            self._kept.move_to_end(session)
            return kept[1]

    def _keep(self, session: str, key: str, outcome: Decoded) -> None:
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


def preview_pixels(image: DecodedImage) -> np.ndarray:
    """The preview of a decoded upload: at most ``PREVIEW_SIDE`` pixels a side (the decode is not changed)."""
    picture = image.image
    if max(picture.size) > PREVIEW_SIDE:
        picture = ImageOps.contain(picture, (PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BICUBIC)
    return np.asarray(picture)
