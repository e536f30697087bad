"""The two small records every synthetic task shares: a generated ``Sample`` and a ``TaskSpec``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .law import Law


@dataclass
class Sample:
    """One generated image with its label and the ground-truth mask of the lesions that decide the class."""

    image: np.ndarray  # uint8 (size, size, 3) RGB
    label: int
    mask: np.ndarray  # bool (size, size)


@dataclass(frozen=True)
class TaskSpec:
    """A synthetic classification task: its classes, its generator ``generate(rng, label, size)`` and
    ``draw_plan(rng, label)``, the generator's first draws (all that the label decides) without rendering,
    and the ``law`` of what an image shows of that plan (its module's ``LAW``, if it declares one)."""

    name: str
    class_names: tuple[str, ...]
    ordinal: bool
    description: str
    generate: Callable[[np.random.Generator, int, int], Sample]
    draw_plan: Callable[[np.random.Generator, int], dict]
    law: Law | None = None  # what an image shows of its plan (the Bayes ceiling); None: not declared

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)
