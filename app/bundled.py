"""The model folders bundled with the app (``weights/<name>/``) and whether each can be loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffmic.hub import CONFIG_NAME, WEIGHTS_NAME
from diffmic.tasks import TASKS


@dataclass(frozen=True)
class Bundled:
    """A bundled model folder and whether it can be loaded."""

    name: str
    folder: Path
    problem: str | None  # None when config.json and model.safetensors are present

    @property
    def available(self) -> bool:
        """True when both files are present."""
        return self.problem is None


def find_bundled(root: Path) -> list[Bundled]:
    """The known tasks plus any other model folder under ``root``, in a stable order, each with what is
    missing (the folder, its config.json or its weights)."""
    names = list(TASKS)
    if root.is_dir():
        names += sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file() and p.name not in TASKS)
    return [Bundled(name, root / name, folder_problem(root, name)) for name in names]


def folder_problem(root: Path, name: str) -> str | None:
    """What keeps ``root/name`` from being loaded, as shown on the page; None when nothing does."""
    folder, shown = root / name, f"{root.name}/{name}"
    if not folder.is_dir():
        return f"{shown}/ not found"
    if not (folder / CONFIG_NAME).is_file():
        return f"{shown}/ has no {CONFIG_NAME}"
    if not (folder / WEIGHTS_NAME).is_file():
        return f"{shown}/ has no {WEIGHTS_NAME}"
    return None
