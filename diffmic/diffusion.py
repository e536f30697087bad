"""Label diffusion with a prior mean (CARD / DiffMIC) and its DDPM and DDIM samplers.

Forward process on a label vector y0 (one-hot), conditioned on a prior mean p (the DCG prior):

    q(y_t | y0, p) = N( sqrt(ab_t) * y0 + (1 - sqrt(ab_t)) * p ,  (1 - ab_t) I )

so y_T ~ N(p, I). In the shifted variable u = y - p this is the ordinary DDPM forward process
u_t = sqrt(ab_t) u0 + sqrt(1 - ab_t) eps, which is how DDIM is derived (``ddpm_ddim.py``).

The samplers follow diffusers' split: they know nothing of networks. ``set_timesteps`` picks the
chain, and ``step(model_output, t, sample, prior)`` turns the predicted noise at step t into the
sample of the next (smaller) timestep. Timesteps are 0-based: t = T-1 is the noisiest, and the step
at t = 0 returns the predicted y0. Each sampler is one registered class (``SAMPLERS``, ``register_sampler``):
its name, its words for people and whether its steps are affine (``AffineSampler``: the fast path).
The sampler API is in ``sampler.py``, the built-in DDPM and DDIM samplers in ``ddpm_ddim.py``, the chains'
noise in ``noise.py``; ``SAMPLERS`` here holds the built-in samplers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import ddpm_ddim  # noqa: F401  (registers the built-in samplers in SAMPLERS)
from .sampler import SAMPLERS, Sampler


def make_betas(
    schedule: str, timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """Noise schedule beta_1..beta_T as float64 (``linear`` as in DDPM/CARD, or ``cosine``)."""
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
        ab = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi / 2) ** 2
        ab = ab / ab[0]
        return (1 - ab[1:] / ab[:-1]).clamp(1e-8, 0.999)
    raise ValueError(f"unknown beta schedule {schedule!r}; use 'linear' or 'cosine'")


def _bcast(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast against ``like`` (batch first), in ``like``'s dtype."""
    out = values[t].to(like.dtype)
    return out.reshape(out.shape + (1,) * (like.dim() - out.dim()))


class LabelDiffusion(nn.Module):
    """The forward (noising) process: the schedule and ``q_sample``.

    The schedule is held twice: as buffers that follow the model to its device (for the batched
    training-time ``q_sample``) and as Python floats (``alphas_cumprod_list``) for the samplers'
    per-step coefficients, so a reverse step never reads a number back from the GPU.
    """

    def __init__(
        self,
        timesteps: int = 1000,
        schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ):
        super().__init__()
        self.timesteps = timesteps
        betas = make_betas(schedule, timesteps, beta_start, beta_end)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod, persistent=False)
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt(), persistent=False)
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt(), persistent=False)
        self.alphas_cumprod_list: list[float] = alphas_cumprod.tolist()

    def marginal(
        self, y0: torch.Tensor, prior: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of q(y_t | y0, prior); ``t`` holds one timestep per row.

        The mean is sqrt(ab_t) * y0 + (1 - sqrt(ab_t)) * prior, shaped like y0; the standard deviation
        sqrt(1 - ab_t) is shared by every class, shaped (B, 1, ...) to broadcast against y0.
        """
        sab = _bcast(self.sqrt_alphas_cumprod, t, y0)
        return sab * y0 + (1 - sab) * prior, _bcast(self.sqrt_one_minus_alphas_cumprod, t, y0)

    def q_sample(
        self, y0: torch.Tensor, prior: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Draw y_t ~ q(y_t | y0, prior) with the given noise; ``t`` holds one timestep per row."""
        mean, std = self.marginal(y0, prior, t)
        return mean + std * noise

    def predict_y0(
        self, y_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, prior: torch.Tensor
    ) -> torch.Tensor:
        """Invert ``q_sample`` for y0 given the (predicted) noise."""
        sab = _bcast(self.sqrt_alphas_cumprod, t, y_t)
        return (y_t - (1 - sab) * prior - _bcast(self.sqrt_one_minus_alphas_cumprod, t, y_t) * eps) / sab


def sampler_class(name: str) -> type[Sampler]:
    """The registered sampler called ``name`` or labelled ``name`` (any case, e.g. ``DDIM`` from the app)."""
    key = str(name).strip().lower()
    for cls in SAMPLERS.values():
        if key in (cls.name, cls.label.lower()):
            return cls
    known = " or ".join(cls.name for cls in SAMPLERS.values())
    raise ValueError(f"unknown sampler {name!r}; use {known}")


def make_sampler(name: str, diffusion: LabelDiffusion, steps: int | None = None, eta: float = 0.0) -> Sampler:
    """Build a registered sampler by name (``SAMPLERS``: ``ddpm``, ``ddim``, ...) with its timesteps set."""
    sampler = sampler_class(name)(diffusion, eta=eta)
    sampler.set_timesteps(steps)
    return sampler
