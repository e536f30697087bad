"""The task registry (one table for the package, the CLI, the app and the benchmarks) and the demo disclaimer.

Each built-in task mirrors one of the paper's datasets; the bundled demo models are trained on the
procedural generator the task names (``TaskInfo.generator``, a module of ``diffmic.data.synthetic``).
A new task is one more entry here: the generated data (``diffmic.data.synthetic.GENERATORS``), the CLI's
choices, the app's notes and the benchmarks' defaults all read this table, and the preprocessing of a model
of that task (``Preprocessing``: how its images are made square, what counts as background for the ROIs)
is the entry's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DISCLAIMER = "Demo weights trained on synthetic images — not a medical device, not for clinical use."


@dataclass(frozen=True)
class Preprocessing:
    """How a task's images are made square, and what counts as background when the ROIs are chosen."""

    # "crop": the largest centred square (fundus and dermoscopy photos are centred on their subject);
    # "pad": the whole image, letterboxed on black (a chest X-ray keeps both its sides)
    square: Literal["crop", "pad"] = "crop"
    # luminance in [0, 1] at or below which a locally averaged pixel is background, never the centre of an
    # ROI (the black surround of a fundus photo, the outside of an ultrasound sector); None: nothing is
    # (dark lungs are tissue)
    background_level: float | None = 0.08

    def __post_init__(self) -> None:
        if self.square not in ("crop", "pad"):
            raise ValueError(f"square must be 'crop' or 'pad', got {self.square!r}")
        if self.background_level is not None and not 0 <= self.background_level < 1:
            raise ValueError(f"background_level must be in [0, 1) or None, got {self.background_level}")


DEFAULT_PREPROCESSING = Preprocessing()


@dataclass(frozen=True)
class TaskInfo:
    """What a task is: its classes (short and full names), whether they are ordinal, the modality, the
    generator of its images (if any) and its ``Preprocessing``."""

    name: str
    title: str  # one line for a menu
    modality: str  # "colour fundus": used in sentences ("the colour fundus images this model was trained on")
    class_names: tuple[str, ...]
    full_names: tuple[str, ...]  # spelled out for people, same order as class_names
    ordinal: bool
    # dotted path of the module that generates the task's images (``DESCRIPTION``, ``generate(rng, label,
    # size)``, ``draw_plan(rng, label)``); None for a task with no generated data
    generator: str | None = None
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def full_name(self, class_name: str) -> str:
        """``"MEL"`` → ``"Melanoma (MEL)"``; a name that is already full is returned as is."""
        if class_name not in self.class_names:
            return class_name
        full = self.full_names[self.class_names.index(class_name)]
        return full if full == class_name else f"{full} ({class_name})"


TASKS: dict[str, TaskInfo] = {
    "fundus": TaskInfo(
        "fundus",
        "Fundus photographs: diabetic-retinopathy grade (5 grades)",
        "colour fundus",
        ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR"),
        (
            "No diabetic retinopathy",
            "Mild non-proliferative DR",
            "Moderate non-proliferative DR",
            "Severe non-proliferative DR",
            "Proliferative DR",
        ),
        True,
        generator="diffmic.data.synthetic.fundus",
    ),
    "derm": TaskInfo(
        "derm",
        "Dermoscopy: skin-lesion type (4 classes)",
        "dermoscopy",
        ("NV", "MEL", "BCC", "BKL"),
        ("Melanocytic nevus", "Melanoma", "Basal cell carcinoma", "Benign keratosis"),
        False,
        generator="diffmic.data.synthetic.derm",
    ),
    "placenta": TaskInfo(
        "placenta",
        "Placental ultrasound: Grannum maturity grade (4 grades)",
        "placental ultrasound",
        ("Grade 0", "Grade I", "Grade II", "Grade III"),
        ("Grannum grade 0", "Grannum grade I", "Grannum grade II", "Grannum grade III"),
        True,
        generator="diffmic.data.synthetic.placenta",
    ),
}


def task_info(name: str | None) -> TaskInfo | None:
    """The built-in task of this name, or None for a custom model."""
    return TASKS.get(name or "")


def preprocessing(task: str | None) -> Preprocessing:
    """The preprocessing of a registered task; the default one (centre crop, dark background) otherwise."""
    info = task_info(task)
    return info.preprocessing if info else DEFAULT_PREPROCESSING


def images_phrase(task: str) -> str:
    """How a sentence names a task's images: "the dermoscopy images" (or "the images" for a custom task)."""
    info = task_info(task)
    return f"the {info.modality} images" if info else "the images"


def generated_tasks() -> list[str]:
    """The registered tasks that have generated data (a ``generator``), in the registry's order."""
    return [name for name, info in TASKS.items() if info.generator]
