"""Classification metrics in pure numpy: accuracy, macro-F1, Cohen's kappa, calibration error, AUROC.

Labels are integer class indices in ``[0, num_classes)``. Every function validates its inputs and
raises :class:`ValueError` with a clear message on empty arrays, shape mismatches or labels out of range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

KAPPA_WEIGHTS = (None, "linear", "quadratic")


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _as_labels(y: ArrayLike, name: str, num_classes: int | None = None) -> np.ndarray:
    """Return ``y`` as a non-empty 1-D int64 array of labels, optionally checked against ``num_classes``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype.kind in "biu":
        labels = arr.astype(np.int64)
    elif arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        labels = arr.astype(np.int64)
    else:
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if num_classes is not None:
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            shown = ", ".join(str(v) for v in np.unique(bad)[:5])
            raise ValueError(f"{name} has labels outside [0, {num_classes}): {shown}")
    return labels


def _label_pair(
    y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(y_true, "y_true", num_classes)
    p = _as_labels(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred have different lengths: {t.size} vs {p.size}")
    return t, p


def _as_probs(probs: ArrayLike, n: int | None = None) -> np.ndarray:
    """Return ``probs`` as a finite (N, C) float array with values in [0, 1]."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"probs must be a 2-D (N, C) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"probs is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError("probs contains NaN or infinite values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("probs must lie in [0, 1]")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"probs has {arr.shape[0]} rows but y_true has {n} labels")
    return arr


def _f1_scores(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (0.0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = predicted + support  # = 2 tp + fp + fn
        f1 = np.where(denom > 0, 2.0 * tp / denom, 0.0)
    return precision, recall, f1


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) int64 confusion matrix; rows are true classes, columns predicted classes."""
    c = _check_num_classes(num_classes)
    t, p = _label_pair(y_true, y_pred, c)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c).astype(np.int64)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of labels predicted exactly."""
    t, p = _label_pair(y_true, y_pred, None)
    return float(np.mean(t == p))


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> float:
    """Unweighted mean of per-class F1.

    Classes that occur in neither ``y_true`` nor ``y_pred`` are ignored (as scikit-learn does when
    no ``labels`` are given); a class that occurs in only one of them counts with F1 = 0.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    _, _, f1 = _f1_scores(cm)
    return float(f1[present].mean())


def per_class_report(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Per-class ``name``, ``precision``, ``recall``, ``f1`` and ``support`` (undefined ratios are 0.0)."""
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty")
    cm = confusion_matrix(y_true, y_pred, len(names))
    precision, recall, f1 = _f1_scores(cm)
    support = cm.sum(axis=1)
    return [
        {
            "name": str(name),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    ]


def cohen_kappa(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int, weights: str | None = None) -> float:
    """Cohen's kappa, unweighted or with ``"linear"`` / ``"quadratic"`` disagreement weights.

    Weights use the class indices ``0..num_classes-1`` themselves, so a distance of two grades counts
    as two even when an intermediate class is absent from the data. When the chance disagreement is
    zero (e.g. both raters always give the same single class) kappa is undefined; 0.0 is returned
    instead of NaN.
    """
    if weights not in KAPPA_WEIGHTS:
        raise ValueError(f"weights must be one of {KAPPA_WEIGHTS}, got {weights!r}")
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    n = cm.sum()
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    idx = np.arange(cm.shape[0])
    dist = np.abs(idx[:, None] - idx[None, :]).astype(np.float64)
    if weights is None:
        w = (dist > 0).astype(np.float64)
    elif weights == "linear":
        w = dist
    else:
        w = dist**2
    denom = float(np.sum(w * expected))
    if denom <= 0.0:
        return 0.0
    return float(1.0 - np.sum(w * cm) / denom)


def expected_calibration_error(probs: np.ndarray, y_true: ArrayLike, n_bins: int = 15) -> float:
    """Top-label expected calibration error over ``n_bins`` equal-width confidence bins.

    The confidence of a row is its maximum probability and its prediction the argmax (first on ties).
    Bin ``b`` covers ``(b/n_bins, (b+1)/n_bins]`` (the first bin also includes 0). ECE is
    ``sum_b |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    t = np.asarray(y_true)
    p = _as_probs(probs, t.shape[0] if t.ndim == 1 else None)
    labels = _as_labels(t, "y_true", p.shape[1])
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins = np.searchsorted(inner_edges, confidence, side="left")
    count = np.bincount(bins, minlength=n_bins)
    gap = np.bincount(bins, weights=correct, minlength=n_bins) - np.bincount(
        bins, weights=confidence, minlength=n_bins
    )
    # |sum(correct) - sum(conf)| / N per bin equals |B|/N * |acc - conf|
    return float(np.sum(np.abs(gap[count > 0])) / labels.size)


def auroc(negatives: ArrayLike, positives: ArrayLike) -> float:
    """Area under the ROC curve of a score meant to be higher for ``positives`` than for ``negatives``:
    the probability that a random positive scores above a random negative, ties counting one half."""
    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    if not neg.size or not pos.size:
        raise ValueError("auroc needs at least one negative and one positive score")
    if not (np.isfinite(neg).all() and np.isfinite(pos).all()):
        raise ValueError("auroc needs finite scores")
    values, inverse = np.unique(np.concatenate([neg, pos]), return_inverse=True)
    counts = np.bincount(inverse, minlength=values.size)
    midranks = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mid-ranks of tied groups
    rank_sum = float(midranks[inverse[neg.size :]].sum())
    return (rank_sum - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size)


def classification_summary(
    y_true: ArrayLike, probs: np.ndarray, class_names: Sequence[str], ordinal: bool
) -> dict[str, Any]:
    """JSON-friendly summary of predictions ``argmax(probs)`` against ``y_true``.

    Keys: ``accuracy``, ``macro_f1``, ``kappa`` (quadratic-weighted when ``ordinal`` else unweighted),
    ``kappa_weights``, ``ece``, ``confusion_matrix`` (list of lists), ``per_class`` and ``n``.
    """
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty")
    t = np.asarray(y_true)
    p = _as_probs(probs, t.shape[0] if t.ndim == 1 else None)
    if p.shape[1] != len(names):
        raise ValueError(f"probs has {p.shape[1]} columns but there are {len(names)} class names")
    labels = _as_labels(t, "y_true", len(names))
    pred = p.argmax(axis=1)
    c = len(names)
    kappa_weights = "quadratic" if ordinal else None
    return {
        "accuracy": accuracy(labels, pred),
        "macro_f1": macro_f1(labels, pred, c),
        "kappa": cohen_kappa(labels, pred, c, weights=kappa_weights),
        "kappa_weights": kappa_weights,
        "ece": expected_calibration_error(p, labels),
        "confusion_matrix": confusion_matrix(labels, pred, c).tolist(),
        "per_class": per_class_report(labels, pred, names),
        "n": int(labels.size),
    }


def paired_bootstrap_ci(
    correct_a: ArrayLike, correct_b: ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(a) - accuracy(b) on the same images (resampled together)."""
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("need two equally long, non-empty vectors of per-image correctness")
    idx = np.random.default_rng(seed).integers(0, len(a), (n_boot, len(a)))
    diffs = a[idx].mean(1) - b[idx].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)
