"""The built-in samplers, registered in ``SAMPLERS`` in the order offered: ``DDPMSampler`` (CARD's
posterior, the paper's) and ``DDIMSampler``."""

from __future__ import annotations

import math

from .sampler import AffineSampler, register_sampler


@register_sampler
class DDPMSampler(AffineSampler):
    """Ancestral sampling with CARD's posterior q(y_{t-1} | y_t, y0, prior).

    With all T steps this is exactly the DDPM/CARD chain; with fewer steps the posterior is taken
    between consecutive chosen timesteps (re-spaced DDPM).
    """

    name = "ddpm"
    label = "DDPM"
    help = "ancestral sampling with CARD's posterior, fresh noise at every step (the paper's)"
    look_for = (
        "**What to look for:** near t = T the label is mostly noise, so the runs jump around the prior; "
        "as t falls the noise is taken out and the runs settle on the answer."
    )

    def _update(self, eps, sample, prior, y0, ab_t: float, ab_prev: float, noise):
        alpha_t = ab_t / ab_prev
        beta_t = 1 - alpha_t
        g0 = beta_t * math.sqrt(ab_prev) / (1 - ab_t)
        g1 = (1 - ab_prev) * math.sqrt(alpha_t) / (1 - ab_t)
        g2 = 1 + (math.sqrt(ab_t) - 1) * (math.sqrt(alpha_t) + math.sqrt(ab_prev)) / (1 - ab_t)
        var = (1 - ab_prev) / (1 - ab_t) * beta_t
        return g0 * y0 + g1 * sample + g2 * prior + math.sqrt(var) * noise


@register_sampler
class DDIMSampler(AffineSampler):
    """DDIM (Song et al. 2021) in the prior-shifted variable u = y - prior; ``eta=0`` is deterministic."""

    name = "ddim"
    label = "DDIM"
    help = "deterministic with eta = 0, good in a few steps; eta = 1 adds DDPM-like noise"
    look_for = (
        "**What to look for:** DDIM walks a smooth, deterministic path from the prior to the answer in "
        "a few steps; the runs differ only in where they started."
    )
    default_steps = 50
    uses_eta = True

    def _update(self, eps, sample, prior, y0, ab_t: float, ab_prev: float, noise):
        sigma = self.eta * math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
        u_prev = math.sqrt(ab_prev) * (y0 - prior) + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        return prior + u_prev + sigma * noise
