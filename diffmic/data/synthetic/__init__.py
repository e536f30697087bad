"""Procedural medical-like images with ground-truth lesion masks, for training and testing the demo models.

The generators are listed in the task registry (``diffmic.tasks.TASKS``, each entry's ``generator``);
``GENERATORS`` is the view of that registry as ``TaskSpec``s. Three tasks mirror the paper's datasets:
``fundus`` (APTOS diabetic-retinopathy grades), ``derm`` (ISIC dermoscopy) and ``placenta``
(placental-maturity ultrasound). In each, the class is decided by small local lesions, and adjacent
classes overlap on purpose, so even the best possible classifier is right on only 91-95 % of the images
(see each module's docstring for its exact rule, and ``ceiling`` for that best accuracy, computed from the
generators' plans).

Everything is a deterministic function of (task, seed, index, size): the label comes from a seeded
permutation of each block of ``num_classes`` consecutive indices (so every contiguous range of
indices is balanced to within two images per class), and the image from a generator seeded with
(task, seed, index). The scene is drawn in normalised coordinates, so the same index at another size
is the same picture at another resolution.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator, Mapping
from functools import cache

import numpy as np

from ...tasks import TASKS, TaskInfo
from .sample import Sample, TaskSpec

__all__ = [
    "GENERATORS",
    "Sample",
    "TaskSpec",
    "generate_dataset",
    "generate_sample",
    "get_task",
    "label_of",
    "plan_of",
]


@cache
def _spec(info: TaskInfo) -> TaskSpec:
    module = importlib.import_module(info.generator)
    return TaskSpec(
        info.name,
        info.class_names,
        info.ordinal,
        module.DESCRIPTION,
        module.generate,
        module.draw_plan,
        getattr(module, "LAW", None),
    )


class _Generators(Mapping[str, TaskSpec]):
    """The registry's tasks that have a generator, as ``TaskSpec``s (read live, so a task added to
    ``diffmic.tasks.TASKS`` is generated with no other change)."""

    def __getitem__(self, task: str) -> TaskSpec:
        info = TASKS.get(task)
        if info is None or not info.generator:
            raise KeyError(task)
        return _spec(info)

    def __iter__(self) -> Iterator[str]:
        return (name for name, info in TASKS.items() if info.generator)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"GENERATORS({', '.join(self)})"


GENERATORS: Mapping[str, TaskSpec] = _Generators()

MIN_SIZE = 32
_LABEL_STREAM = 1  # keeps the label permutations independent of the image streams


def get_task(task: str) -> TaskSpec:
    """The TaskSpec of a task name; ValueError listing the known names otherwise."""
    if task not in GENERATORS:
        raise ValueError(f"unknown synthetic task {task!r}; known tasks: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[task]


def _task_key(task: str) -> int:
    return zlib.crc32(task.encode())


def _check(seed: int, index: int, size: int) -> None:
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")


def label_of(task: str, index: int, seed: int) -> int:
    """The label of sample ``index``: a seeded permutation of the classes within each block of C indices."""
    k = get_task(task).num_classes
    block, pos = divmod(int(index), k)
    perm = np.random.default_rng([_task_key(task), int(seed), block, _LABEL_STREAM]).permutation(k)
    return int(perm[pos])


def _image_rng(task: str, index: int, seed: int) -> np.random.Generator:
    """The generator that draws sample ``index``'s plan and image."""
    return np.random.default_rng([_task_key(task), int(seed), int(index)])


def generate_sample(task: str, index: int, seed: int, size: int = 128) -> Sample:
    """Sample ``index`` of the synthetic ``task`` with this seed, rendered at size x size."""
    spec = get_task(task)
    _check(seed, index, size)
    return spec.generate(_image_rng(task, index, seed), label_of(task, index, seed), int(size))


def plan_of(task: str, index: int, seed: int) -> tuple[int, dict]:
    """(label, plan) of sample ``index``: the plan ``generate_sample`` draws first, without rendering."""
    _check(seed, index, MIN_SIZE)
    label = label_of(task, index, seed)
    return label, get_task(task).draw_plan(_image_rng(task, index, seed), label)


def generate_dataset(
    task: str, n: int, seed: int, size: int = 128, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples start..start+n-1, stacked.

    Returns images (n, size, size, 3) uint8, labels (n,) int64 and masks (n, size, size) bool."""
    get_task(task)
    _check(seed, start, size)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    masks = np.empty((n, size, size), bool)
    for i in range(n):
        s = generate_sample(task, start + i, seed, size)
        images[i], labels[i], masks[i] = s.image, s.label, s.mask
    return images, labels, masks
