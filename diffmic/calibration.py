"""Fitted on validation data: the softmax temperature of the shipped estimator, and the fusion weights."""

from __future__ import annotations

import math

import numpy as np
import torch

from .uncertainty import answer_from_labels


def fit_temperature(y0: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the validation NLL of softmax(y0 / T) averaged over chains (grid search).

    ``y0`` (N, S, C) are the final label vectors of S chains per image, run with the sampler and chain
    count that is shipped, so the calibrated estimator is the one users get.
    """
    y = torch.as_tensor(np.asarray(y0), dtype=torch.float64)
    labels_t = torch.as_tensor(np.asarray(labels))
    best, best_nll = 1.0, math.inf
    for temp in np.exp(np.linspace(np.log(0.02), np.log(5.0), 120)):
        p = answer_from_labels(y, temp).clamp_min(1e-12)
        nll = -p.log()[torch.arange(len(labels_t)), labels_t].mean().item()
        if nll < best_nll:
            best, best_nll = float(temp), nll
    return best


def fit_fusion_weights(
    global_logits: np.ndarray, local_logits: np.ndarray, labels: np.ndarray, grid: int = 41
) -> tuple[float, float]:
    """(w_g, w_l) minimising the validation NLL of softmax(w_g * global + w_l * local).

    The search covers w_g, w_l in [0, 2] (so either branch alone, their mean, and sharper or flatter
    combinations): the fit is never worse on validation than the better branch alone.
    """
    g = torch.as_tensor(np.asarray(global_logits), dtype=torch.float64)
    loc = torch.as_tensor(np.asarray(local_logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels))
    values = np.linspace(0.0, 2.0, grid)
    best, best_nll = (0.5, 0.5), math.inf
    for wg in values:
        for wl in values:
            if wg == 0 and wl == 0:
                continue
            nll = torch.nn.functional.cross_entropy(wg * g + wl * loc, y).item()
            if nll < best_nll:
                best, best_nll = (float(wg), float(wl)), nll
    return best
