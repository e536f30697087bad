"""The Bayes ceiling: the best accuracy any classifier can reach on the synthetic tasks.

Each generator decides the label, draws a plan from it (``draw_plan``: lesion counts, an atypia score, a
mimic flag) and renders the image from the plan and label-free randomness. The label reaches the image only
through what the image shows of the plan, ``Law.visible``, so the best classifier predicts
argmax_c P(c) P(visible | c), with P(c) uniform (each block of C indices holds every class once). Each
generator module writes down its distributions of the visible plan as its ``LAW`` (``law.Law``;
``tests/test_ceiling.py`` checks them against the samplers); with them the ceiling is exact, on given images
and in expectation.

What an image shows of its plan:

- fundus: the numbers of dots (microaneurysms and the look-alike dots, drawn alike), haemorrhages,
  exudate clusters, cotton-wool spots and tufts (neovascular tufts and their IRMA look-alikes, drawn alike);
- placenta: the numbers of foci (with the look-alike dots), basal-plate dashes, indentations, septa,
  rings and echogenic blobs, and whether the chorionic plate undulates (always from grade I on, w.p. 0.5
  in grade 0);
- derm: the kind of lesion (melanocytic, BCC, keratosis: the mimics still have their own renderer) and,
  if melanocytic, the atypia score's side of 0.5. The score itself would tell no more: its likelihood
  ratio, Beta(5, 2) / Beta(2, 5) = (s / (1 - s))^3, crosses 1 exactly at 0.5.

The counts are what the plan asks for: the site samplers keep n of 3n + 6 candidates, so they always
find enough in practice. Counting every planned lesion as seen (however small, overlapped or speckled)
makes the ceiling an upper bound for any reader of the pixels. It bounds expected accuracy: on one given
set of images another rule can score a little higher by chance (on the 500 placenta test images, the
Bayes rule on the lesion counts alone gets 0.920, the full rule 0.914), never in expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import numpy as np

from . import GENERATORS, get_task, plan_of
from .law import Law, bern, fixed, pois

__all__ = ["Law", "bern", "fixed", "pois", "law_of", "tasks_with_law", "best_possible", "ceiling"]


def law_of(task: str) -> Law:
    """The ``LAW`` a task's generator module declares; ValueError for a generated task without one."""
    law = get_task(task).law
    if law is None:
        raise ValueError(f"the generator of {task!r} declares no LAW: it has no Bayes ceiling")
    return law


def tasks_with_law() -> list[str]:
    """The generated tasks whose generator declares its ``LAW``, in the registry's order."""
    return [task for task, spec in GENERATORS.items() if spec.law is not None]


def visible_plans(task: str, indices: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and visible plans (n, d) of the given sample indices, drawn without rendering."""
    law = law_of(task)
    labels, rows = [], []
    for index in indices:
        label, plan = plan_of(task, int(index), seed)
        labels.append(label)
        rows.append(law.visible(plan))
    return np.array(labels, np.int64), np.array(rows, np.int64).reshape(len(rows), len(law.names))


def likelihood(task: str, visible: np.ndarray) -> np.ndarray:
    """P(visible | c): (n, C) for visible plans (n, d)."""
    return np.stack(
        [
            np.prod([d.pmf(visible[:, j]) for j, d in enumerate(dists)], axis=0)
            for dists in law_of(task).classes
        ],
        axis=1,
    )


def bayes_posterior(task: str, indices: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and the Bayes posterior P(c | visible plan) (n, C) of the given sample indices: its argmax
    is the best possible answer on each image, so an error where it is wrong is irreducible."""
    labels, visible = visible_plans(task, indices, seed)
    lik = likelihood(task, visible)
    return labels, lik / lik.sum(1, keepdims=True)


def ceiling(task: str, indices: Sequence[int], seed: int) -> float:
    """The Bayes ceiling on these images: the fraction where the Bayes rule names the true label (exact)."""
    labels, post = bayes_posterior(task, indices, seed)
    return float((post.argmax(1) == labels).mean())


def best_possible(task: str, n: int, seed: int = 0, start: int | None = None) -> float:
    """The best accuracy possible on the generated test set of ``synthetic_splits(task, 0, n, size, seed)``
    (n images from ``SYNTHETIC_TEST_START``, or from ``start``): what the app shows beside its accuracy."""
    from ..datasets import SYNTHETIC_TEST_START

    get_task(task)
    first = SYNTHETIC_TEST_START if start is None else start
    return ceiling(task, range(first, first + n), seed)


def expected_ceiling(task: str, tail: float = 1e-12) -> float:
    """The ceiling's expectation over fresh images, the sum over visible plans v of max_c P(c) P(v | c).

    The class whose plans spread widest sums to 1 on its own, so the max is only needed on the box where
    another class shows (below its distributions' 1 - ``tail`` quantiles): exact up to d C ``tail``."""
    law = law_of(task)
    tops = np.array([[int(d.ppf(1 - tail)) for d in dists] for dists in law.classes])
    widest = int(np.prod(tops + 1, axis=1).argmax())
    box = [np.arange(top + 1) for top in np.delete(tops, widest, axis=0).max(0)]
    joints = np.stack(
        [
            reduce(np.multiply.outer, [d.pmf(v) for d, v in zip(dists, box, strict=True)])
            for dists in law.classes
        ]
    )
    return (1 + float((joints.max(0) - joints[widest]).sum())) / len(law.classes)
