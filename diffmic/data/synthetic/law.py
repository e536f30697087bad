"""What an image shows of a generator's plan: a ``Law`` (each synthetic task's generator module declares
its ``LAW`` beside ``draw_plan``), and the small integer distributions it is written with. The Bayes ceiling
(``ceiling.py``) reads it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scipy import stats


def fixed(k: int = 0):
    """Always k."""
    return stats.randint(k, k + 1)


def bern(p: float, at_least: int = 0):
    """at_least + 1 w.p. p, else at_least."""
    return stats.bernoulli(p, loc=at_least)


def pois(mean: float, at_least: int = 0):
    """at_least + Poisson(mean)."""
    return stats.poisson(mean, loc=at_least)


@dataclass(frozen=True)
class Law:
    """What an image shows of its plan (a tuple of small integers) and, per class, the distribution of each
    entry (independent given the class)."""

    names: tuple[str, ...]
    visible: Callable[[dict], tuple[int, ...]]
    classes: tuple[tuple, ...]
