"""Predictive uncertainty from repeated stochastic reverse-diffusion samples (CARD-style).

For one image, DiffMIC can run ``N`` independent reverse-diffusion chains and obtain ``N``
class-probability vectors. Their spread tells how sure the model is: the per-class mean and standard
deviation, a majority vote over the chains, and a paired t-test asking whether the two most likely
classes are told apart consistently across the chains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from .chain import label_to_probs

ArrayLike = np.ndarray | torch.Tensor


def answer_probabilities(sample_probs: ArrayLike) -> ArrayLike:
    """DiffMIC's answer, the one definition of its estimator: the mean over the N chains of each chain's
    class probabilities softmax(y_0 / T) (``chain.label_to_probs``, T the fitted temperature).

    (..., N, C) → (..., C), for a numpy array or a tensor. The pipeline, ``evaluate`` and the uncertainty
    summary take the answer from here.
    """
    return sample_probs.mean(-2)


def answer_from_labels(y0: ArrayLike, temperature: float) -> torch.Tensor:
    """The estimator from the chains' final label vectors y_0 (..., N, C): (..., C) probabilities."""
    return answer_probabilities(label_to_probs(torch.as_tensor(y0), temperature))


@dataclass
class SampleUncertainty:
    """Summary of ``N`` sampled class-probability vectors for one image."""

    mean: np.ndarray  # (C,) mean probability
    std: np.ndarray  # (C,) per-class population standard deviation (ddof=0) across samples
    vote: np.ndarray  # (C,) fraction of samples whose argmax is each class
    majority: int  # majority-vote class (ties -> higher mean probability, then lower index)
    agreement: float  # fraction of samples voting for ``majority``
    top2: tuple[int, int]  # the two classes with the highest mean probability (ties -> lower index)
    t_statistic: float  # paired t statistic of top2[0] minus top2[1]; +/-inf if they differ by a constant
    p_value: float  # two-sided p-value of that test, never NaN
    distinguishable: bool  # p_value < alpha
    entropy: float  # entropy of ``mean`` in nats
    n_samples: int  # number of samples N

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        """JSON-friendly dict with class-name -> value maps (an infinite t statistic becomes ``None``)."""
        names = [str(n) for n in class_names]
        if len(names) != self.mean.shape[0]:
            raise ValueError(f"got {len(names)} class names for {self.mean.shape[0]} classes")
        if len(set(names)) != len(names):
            raise ValueError("class_names must be unique")

        def by_name(values: np.ndarray) -> dict[str, float]:
            return {name: float(v) for name, v in zip(names, values, strict=True)}

        return {
            "mean": by_name(self.mean),
            "std": by_name(self.std),
            "vote": by_name(self.vote),
            "majority": names[self.majority],
            "agreement": float(self.agreement),
            "top2": [names[self.top2[0]], names[self.top2[1]]],
            "t_statistic": float(self.t_statistic) if math.isfinite(self.t_statistic) else None,
            "p_value": float(self.p_value),
            "distinguishable": bool(self.distinguishable),
            "entropy": float(self.entropy),
            "n_samples": int(self.n_samples),
        }


def _paired_t_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test of ``a`` vs ``b`` with the degenerate cases given finite p-values.

    * fewer than two samples: no evidence either way, ``(0.0, 1.0)``;
    * every difference ``a - b`` is zero: ``(0.0, 1.0)``;
    * every difference is the same non-zero value: ``(+/-inf, 0.0)`` (the limit of the test);
    * otherwise :func:`scipy.stats.ttest_rel`.
    """
    diff = a - b
    if diff.size < 2 or np.all(diff == 0.0):
        return 0.0, 1.0
    if np.all(diff == diff[0]):
        return math.copysign(math.inf, float(diff[0])), 0.0
    result = stats.ttest_rel(a, b)
    t, p = float(result.statistic), float(result.pvalue)
    if math.isnan(t) or math.isnan(p):  # numerical corner case: treat as no evidence
        return 0.0, 1.0
    return t, p


def sample_uncertainty(samples: np.ndarray, alpha: float = 0.05) -> SampleUncertainty:
    """Summarise ``samples`` of shape (N_samples, C), each row a class-probability vector.

    Values must be finite and in [0, 1], with at least one sample and two classes. The top-2 classes
    are ``distinguishable`` when the paired t-test of their sampled probabilities has
    ``p_value < alpha``. With a single sample the test is not run (t = 0, p = 1, not distinguishable);
    when the two classes differ by the same amount in every sample p = 0 (distinguishable unless the
    difference is zero, in which case p = 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"samples must be a 2-D (N_samples, C) array, got shape {x.shape}")
    n, c = x.shape
    if n == 0:
        raise ValueError("samples is empty (no samples)")
    if c < 2:
        raise ValueError(f"samples need at least 2 classes, got {c}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contains NaN or infinite values")
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError("samples must be probabilities in [0, 1]")

    mean = answer_probabilities(x)
    std = x.std(axis=0)
    counts = np.bincount(x.argmax(axis=1), minlength=c)
    vote = counts / n
    tied = np.flatnonzero(counts == counts.max())
    majority = int(tied[np.argmax(mean[tied])])
    order = np.argsort(-mean, kind="stable")
    top2 = (int(order[0]), int(order[1]))
    t_stat, p_value = _paired_t_test(x[:, top2[0]], x[:, top2[1]])
    total = mean.sum()
    if total <= 0.0:
        raise ValueError("samples are all zero; they are not probability vectors")
    entropy = float(stats.entropy(mean / total))
    return SampleUncertainty(
        mean=mean,
        std=std,
        vote=vote,
        majority=majority,
        agreement=float(vote[majority]),
        top2=top2,
        t_statistic=t_stat,
        p_value=p_value,
        distinguishable=bool(p_value < alpha),
        entropy=entropy,
        n_samples=n,
    )


def batch_sample_uncertainty(samples: np.ndarray, alpha: float = 0.05) -> list[SampleUncertainty]:
    """Apply :func:`sample_uncertainty` to each image of ``samples`` shaped (B, N_samples, C)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"samples must be a 3-D (B, N_samples, C) array, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("samples is empty (no images)")
    return [sample_uncertainty(x[i], alpha=alpha) for i in range(x.shape[0])]
