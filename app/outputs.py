"""Per-request folders for downloadable files, removed again after an hour (``DIFFMIC_OUTPUTS_MAX_AGE_S``).

Every run writes into its own new folder (never a shared file name), so concurrent requests cannot
overwrite each other's downloads. Gradio copies returned files into its own cache, which
``delete_cache`` on the Blocks cleans.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

MAX_AGE_S = float(os.environ.get("DIFFMIC_OUTPUTS_MAX_AGE_S") or 3600)  # the soak test shortens it


def outputs_root() -> Path:
    """The parent folder of all run folders (in the system temp folder, which Gradio may serve from)."""
    return Path(tempfile.gettempdir()) / "diffmic-app"


def new_run_folder(prefix: str = "run") -> Path:
    """A fresh folder for one request's files; old folders are pruned on the way."""
    prune()
    folder = outputs_root() / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def prune(max_age_s: float = MAX_AGE_S) -> None:
    """Remove run folders older than ``max_age_s``."""
    root = outputs_root()
    if not root.is_dir():
        return
    cutoff = time.time() - max_age_s
    for child in root.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


def slug(text: str, default: str = "image") -> str:
    """A file-name-safe version of ``text`` (letters, digits, dot, dash, underscore)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:60] or default
