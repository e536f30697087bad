"""Which class of a model each class of a labelled dataset is: one rule for ``python -m diffmic evaluate``
and the app's Evaluate tab.

Class names are compared loosely (case, spaces, punctuation and a leading ``<number>_`` ignored: the folder
``02_moderate`` is the class ``Moderate``), never by position, so a dataset whose folders sort in another
order than the model's classes is still scored against the right labels. A dataset class that names no
class of the model is left out and said so (how many images, which folders, the model's names to rename
them to); a dataset none of whose classes is the model's is refused with both lists of names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .config import DiffMICConfig
    from .data.readers import LabelledFolder

__all__ = [
    "RULE",
    "ClassMismatch",
    "MatchedImages",
    "class_index",
    "match_dataset",
    "normalise_name",
    "require_same_classes",
]
RULE = "names are compared ignoring case, spaces, punctuation and a leading number such as 02_"


class ClassMismatch(ValueError):
    """The dataset's classes are not the model's (the message names both)."""


def normalise_name(text: str) -> str:
    """Lower-case letters and digits, without a leading ``<number>_`` (``02_Moderate`` → ``moderate``)."""
    text = re.sub(r"^\d+[_\- ]+", "", text.strip())
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def class_index(label: str, class_names: Sequence[str]) -> int | None:
    """The index of ``label`` among ``class_names`` (names compared loosely), or None."""
    wanted = normalise_name(label)
    for i, name in enumerate(class_names):
        if normalise_name(name) == wanted:
            return i
    return None


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


@dataclass(frozen=True)
class MatchedImages:
    """The images of a dataset whose class is one of the model's, labelled with the model's class indices,
    and the images left out (``skipped``: dataset class → number of images)."""

    paths: list[Path]
    labels: list[int]
    model_classes: tuple[str, ...]
    skipped: dict[str, int]

    def skipped_sentence(self) -> str:
        """What was left out and how to include it; empty when nothing was."""
        if not self.skipped:
            return ""
        n = sum(self.skipped.values())
        return (
            f"{n} image(s) of classes this model does not have ({_names(sorted(self.skipped))}); the model's "
            f"classes are {_names(self.model_classes)}: to score those images, give their class one of these "
            f"names ({RULE})"
        )

    def dataset(self, config: DiffMICConfig, dataset_type: type | None = None) -> Dataset:
        """The images as a ``FileDataset`` (or ``dataset_type``, a subclass) preprocessed as the pipeline
        preprocesses the model's images: its input size and its task's square (crop or keep the aspect)."""
        from .data.datasets import FileDataset
        from .tasks import preprocessing

        make = dataset_type or FileDataset
        return make(self.paths, self.labels, config.input_size, preprocessing(config.task).square)


def match_dataset(folder: LabelledFolder, model_classes: Sequence[str]) -> MatchedImages:
    """The records of ``folder`` relabelled as the model's classes; ClassMismatch when no class matches."""
    model = tuple(model_classes)
    index = [class_index(name, model) for name in folder.class_names]
    if all(i is None for i in index):
        raise ClassMismatch(
            f"none of the dataset's classes ({_names(folder.class_names)}) is a class of this model "
            f"({_names(model)}): name the class folders after the model's classes ({RULE})"
        )
    keep = [r for r in folder.records if index[r.label] is not None]
    skipped = Counter(folder.class_names[r.label] for r in folder.records if index[r.label] is None)
    return MatchedImages(
        [r.path for r in keep],
        [int(index[r.label]) for r in keep],  # type: ignore[arg-type]
        model,
        dict(sorted(skipped.items())),
    )


def require_same_classes(classes: Sequence[str], model_classes: Sequence[str], what: str) -> None:
    """Labels given by position (generated images of a task) need the model's classes in the same order:
    ClassMismatch otherwise, naming both (``what``: "the fundus task")."""
    if len(classes) != len(model_classes) or any(
        class_index(name, model_classes) != i for i, name in enumerate(classes)
    ):
        raise ClassMismatch(
            f"this model's classes ({_names(model_classes)}) are not {what}'s ({_names(classes)})"
        )
