"""Fitting the distribution check (``diffmic.ood``) after training: the class means and the Ledoit-Wolf
shrunk shared covariance of the training conditioning features, and the split-conformal threshold on
the validation images' scores. Training code: the check a prediction runs needs only ``diffmic.ood``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .ood import DistributionCheck

if TYPE_CHECKING:
    from .conditioning import ConditioningCache
    from .model import DiffMIC


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Covariance of centred rows ``x`` (N, D) shrunk towards mu * I, and the shrinkage (in [0, 1])."""
    n, d = x.shape
    cov = x.T @ x / n
    mu = np.trace(cov) / d
    delta = ((cov - mu * np.eye(d)) ** 2).sum() / d
    norms = (x**2).sum(1)
    beta = ((norms**2).sum() / n - (cov**2).sum()) / (d * n)
    shrinkage = 0.0 if delta == 0 else float(min(beta, delta) / delta)
    shrunk = (1 - shrinkage) * cov
    shrunk[np.diag_indices(d)] += shrinkage * mu
    return shrunk, shrinkage


def fit_check(
    features: np.ndarray, labels: np.ndarray, *, components: int | None = None, standardise: bool = False
) -> DistributionCheck:
    """Fit the class means and the shrunk shared covariance on training features (N, D) with labels (N,).

    ``components`` keeps only the leading K principal directions of the within-class covariance (None:
    all D); ``standardise`` shrinks the covariance of per-feature standardised features instead.
    """
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    center = f.mean(0)
    std = f.std(0)
    scale = np.maximum(std, 1e-6 * max(float(std.max()), 1e-12)) if standardise else np.ones(f.shape[1])
    g = (f - center) / scale
    classes = np.unique(labels)
    means = np.stack([g[labels == c].mean(0) for c in classes])
    within = g - means[np.searchsorted(classes, labels)]
    cov, _ = ledoit_wolf(within)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][: components or len(values)]
    values, vectors = np.maximum(values[order], 1e-12 * values.max()), vectors[:, order]
    whiten = vectors.T / np.sqrt(values)[:, None]  # (K, D) in standardised coordinates
    projection = whiten / scale[None, :]
    return DistributionCheck(
        torch.from_numpy(center).float(),
        torch.from_numpy(projection).float(),
        torch.from_numpy(means @ whiten.T).float(),
    )


def fit_threshold(scores: np.ndarray, acceptance: float) -> float:
    """The threshold that accepts a fresh in-distribution image with probability >= ``acceptance``: the
    ceil((n + 1) * acceptance)-th smallest of n validation scores (split conformal; the largest when n is
    too small for that)."""
    values = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if not values.size:
        raise ValueError("fitting a threshold needs at least one validation score")
    k = min(int(np.ceil((values.size + 1) * acceptance - 1e-9)), values.size)
    return float(values[k - 1])


def fit_distribution_check(
    model: DiffMIC, train: ConditioningCache, val: ConditioningCache
) -> tuple[DistributionCheck, float]:
    """The check of a model fitted on its training conditioning (every view of every image) and the threshold
    that accepts ``config.ood_acceptance`` of the validation images (their unaugmented view 0)."""
    n, views, d = train.features.shape
    rows = model.ood_features(train.features.reshape(n * views, d))
    check = fit_check(rows, np.repeat(train.labels, views))
    val_scores = check.score(model.ood_features(val.features[:, 0]))
    return check, fit_threshold(val_scores, model.config.ood_acceptance)
