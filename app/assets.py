"""Example images: ``<assets>/<task>/<class index>_<true label>_<n>.png`` (PNG, JPEG or DICOM)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffmic.class_match import class_index
from diffmic.tasks import TASKS

EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm")
BROWSER_FORMATS = (".png", ".jpg", ".jpeg")
THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class Example:
    """One example image, its task (folder) and the true label read from its file name."""

    path: Path
    task: str
    label: str

    @property
    def caption(self) -> str:
        """Short caption for a gallery: the true label (and the format when it is not PNG/JPEG)."""
        suffix = self.path.suffix.lower()
        kind = "DICOM" if suffix == ".dcm" else suffix[1:].upper()
        return self.label if suffix in BROWSER_FORMATS else f"{self.label} ({kind})"

    def thumbnail(self) -> str | np.ndarray:
        """What a gallery can show: the file itself, or a decoded thumbnail for DICOM."""
        if self.path.suffix.lower() in BROWSER_FORMATS:
            return str(self.path)
        from diffmic.imageio import load_image

        image = load_image(self.path)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        return np.asarray(image)


def label_from_filename(path: Path) -> str:
    """``2_moderate_0.png`` → ``moderate`` (class index, trailing number and extension dropped)."""
    stem = re.sub(r"[_\- ]\d+$", "", path.stem)
    stem = re.sub(r"^\d+[_\- ]+", "", stem)
    return stem.replace("_", " ").strip() or path.stem


def _task_classes(task: str) -> list[str]:
    return list(TASKS[task].class_names) if task in TASKS else []


def _label(path: Path, task: str) -> str:
    """The true label of an example, spelled as the task's class name when it is one."""
    label = label_from_filename(path)
    names = _task_classes(task)
    k = class_index(label, names)
    return names[k] if k is not None else label


def list_examples(assets_dir: Path, per_task: int | None = None) -> list[Example]:
    """All example images, the bundled tasks first, each sorted by name (``per_task`` caps each task)."""
    if not assets_dir.is_dir():
        return []
    order = list(TASKS)
    task_dirs = sorted(
        (p for p in assets_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name),
    )
    out: list[Example] = []
    for task_dir in task_dirs:
        files = sorted(
            p
            for p in task_dir.iterdir()
            if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
        )
        out += [Example(p, task_dir.name, _label(p, task_dir.name)) for p in files[:per_task]]
    return out
