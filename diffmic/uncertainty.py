"""Predictive uncertainty from repeated stochastic reverse-diffusion samples (CARD-style).

For one image, DiffMIC can run ``N`` independent reverse-diffusion chains and obtain ``N``
class-probability vectors. Their spread tells how sure the model is: the per-class mean and standard
deviation, a majority vote over the chains, and a paired t-test asking whether the two most likely
classes are told apart consistently across the chains. ``close_call`` turns that into the one verdict the
CLI, the API and the app's answer card all word their answer by: a clear answer, a close call, or a tie.
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

ALPHA = 0.05  # the level of the paired t-test of the top two classes (the CLI's and the app's)
TIE_GAP = 0.005  # mean probabilities of the top two closer than half a percentage point: a tie
# a gap below 10 percentage points is a close call whatever the t-test says: one of N chains changing its
# mind moves the gap by up to 2/N (25 points at 8 chains), and the near-tie (52/48 priors) showed
# 8 chains "distinguishing" two classes that 64 chains then split 34/30
CLOSE_GAP = 0.10


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


@dataclass(frozen=True)
class CloseCall:
    """How clear the answer is: ``verdict`` is ``"clear"``, ``"close"`` or ``"tie"`` (see ``close_call``)."""

    verdict: str
    top2: tuple[int, int]  # the two classes with the highest mean probability
    probabilities: tuple[float, float]  # their mean probabilities
    reasons: tuple[str, ...]  # why it is close: "gap" (below CLOSE_GAP) and/or "t-test" (not told apart)

    @property
    def gap(self) -> float:
        """Mean probability of the first minus that of the second (>= 0)."""
        return self.probabilities[0] - self.probabilities[1]

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        """JSON-friendly: verdict, the two classes by name, their probabilities, the gap and the reasons."""
        return {
            "verdict": self.verdict,
            "classes": [str(class_names[self.top2[0]]), str(class_names[self.top2[1]])],
            "probabilities": [float(p) for p in self.probabilities],
            "gap": float(self.gap),
            "reasons": list(self.reasons),
        }


def close_call(
    mean: Sequence[float] | np.ndarray,
    distinguishable: bool,
    n_samples: int,
    close_gap: float = CLOSE_GAP,
    tie_gap: float = TIE_GAP,
) -> CloseCall:
    """The one rule for how plainly an answer may be stated, from the mean class probabilities (C,), the
    paired t-test's verdict on the top two (``SampleUncertainty.distinguishable``) and the number of chains.

    * ``tie``: the top two are within ``tie_gap`` (a tie stays a tie, whatever the test says);
    * ``close``: their gap is below ``close_gap`` (reason ``gap``), or with two chains or more the t-test
      does not tell them apart (reason ``t-test``; one chain gives no test, so no such reason);
    * ``clear`` otherwise.
    """
    m = np.asarray(mean, dtype=np.float64).reshape(-1)
    if m.size < 2:
        raise ValueError(f"need at least 2 classes, got {m.size}")
    order = np.argsort(-m, kind="stable")
    top2 = (int(order[0]), int(order[1]))
    pair = (float(m[top2[0]]), float(m[top2[1]]))
    gap = pair[0] - pair[1]
    reasons = tuple(
        r for r, hit in (("gap", gap < close_gap), ("t-test", n_samples >= 2 and not distinguishable)) if hit
    )
    verdict = "tie" if gap < tie_gap else ("close" if reasons else "clear")
    return CloseCall(verdict, top2, pair, reasons)


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

    @property
    def call(self) -> CloseCall:
        """``close_call`` of this summary: is the answer clear, a close call or a tie?"""
        return close_call(self.mean, self.distinguishable, self.n_samples)

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
            "close_call": self.call.to_dict(names),
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


def sample_uncertainty(samples: np.ndarray, alpha: float = ALPHA) -> SampleUncertainty:
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


def batch_sample_uncertainty(samples: np.ndarray, alpha: float = ALPHA) -> list[SampleUncertainty]:
    """Apply :func:`sample_uncertainty` to each image of ``samples`` shaped (B, N_samples, C)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"samples must be a 3-D (B, N_samples, C) array, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("samples is empty (no images)")
    return [sample_uncertainty(x[i], alpha=alpha) for i in range(x.shape[0])]
