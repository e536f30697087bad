"""An independent reference for the reverse chain: CARD's DDPM posterior written out in numpy float64.

It shares no code with ``diffmic.diffusion`` or ``diffmic.pipeline``, so the tests can hold the
package's chain against the paper's formulas rather than against itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# (y_t rows, timestep per row, prior rows) → predicted noise, all numpy
NumpyEpsFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def card_reverse_chain(
    eps_fn: NumpyEpsFn,
    prior: np.ndarray,
    noise: Sequence[np.ndarray],
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> list[np.ndarray]:
    """The full T-step DDPM chain with CARD's posterior on a linear schedule; T = len(noise).

    y_T = prior + noise[0]; the step at t ≥ 1 draws noise[T - t]; the step at t = 0 returns ŷ0.
    Returns y after every step (the last one is y0).
    """
    T = len(noise)
    betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
    alphas = 1.0 - betas
    ab = np.cumprod(alphas)
    y = prior + noise[0]
    states = []
    for t in range(T - 1, -1, -1):
        eps = eps_fn(y, np.full(len(y), t), prior)
        y0 = (y - (1 - np.sqrt(ab[t])) * prior - np.sqrt(1 - ab[t]) * eps) / np.sqrt(ab[t])
        if t == 0:
            y = y0
        else:
            g0 = betas[t] * np.sqrt(ab[t - 1]) / (1 - ab[t])
            g1 = (1 - ab[t - 1]) * np.sqrt(alphas[t]) / (1 - ab[t])
            g2 = 1 + (np.sqrt(ab[t]) - 1) * (np.sqrt(alphas[t]) + np.sqrt(ab[t - 1])) / (1 - ab[t])
            variance = (1 - ab[t - 1]) / (1 - ab[t]) * betas[t]
            y = g0 * y0 + g1 * y + g2 * prior + np.sqrt(variance) * noise[T - t]
        states.append(y)
    return states


def softmax(y: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(y / temperature) over the last axis."""
    z = np.exp((y - y.max(-1, keepdims=True)) / temperature)
    return z / z.sum(-1, keepdims=True)
