"""Label diffusion with a prior mean (CARD / DiffMIC) and its DDPM and DDIM samplers.

Forward process on a label vector y0 (one-hot), conditioned on a prior mean p (the DCG prior):

    q(y_t | y0, p) = N( sqrt(ab_t) * y0 + (1 - sqrt(ab_t)) * p ,  (1 - ab_t) I )

so y_T ~ N(p, I). In the shifted variable u = y - p this is the ordinary DDPM forward process
u_t = sqrt(ab_t) u0 + sqrt(1 - ab_t) eps, which is how DDIM is derived below.

The samplers follow diffusers' split: they know nothing of networks. ``set_timesteps`` picks the
chain, and ``step(model_output, t, sample, prior)`` turns the predicted noise at step t into the
sample of the next (smaller) timestep. Timesteps are 0-based: t = T-1 is the noisiest, and the step
at t = 0 returns the predicted y0. Each sampler is one registered class (``SAMPLERS``, ``register_sampler``):
its name, its words for people and whether its steps are affine (``AffineSampler``: the fast path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


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


@dataclass
class StepOutput:
    """What one reverse step returns: the next sample and the current estimate of y0."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class Sampler:
    """A reverse chain over a ``LabelDiffusion`` (diffusers' scheduler API): ``set_timesteps`` chooses the
    chain, ``step`` turns the predicted noise at timestep t into the sample of the next one.

    A sampler is defined once, by its class: its registry ``name``, what people are shown (``label``,
    ``help``; ``look_for``: what to look for in its trajectory), its ``default_steps`` in the app (None = all
    T) and whether it reads ``eta``. ``register_sampler`` enters it in ``SAMPLERS``, the table that
    ``make_sampler``, ``SamplingOptions``, the CLI and the app read.

    A sampler whose every step is affine in (sample, prior, noise prediction, fresh noise) derives from
    ``AffineSampler`` and so offers ``coefficients``: the pipeline then runs the folded fast path
    (``diffmic.lean``). Any other sampler only implements ``step`` and runs in the generic loop
    (``diffmic.chain.denoise_steps``).
    """

    name: ClassVar[str] = "base"
    label: ClassVar[str] = ""
    help: ClassVar[str] = ""
    look_for: ClassVar[str] = ""
    default_steps: ClassVar[int | None] = None
    uses_eta: ClassVar[bool] = False
    affine: ClassVar[bool] = False  # True: ``coefficients`` gives every step as one affine map

    def __init__(self, diffusion: LabelDiffusion, eta: float = 0.0):
        if eta < 0:
            raise ValueError("eta must be >= 0")
        self.diffusion = diffusion
        self.eta = eta
        self.timesteps: list[int] = []
        self._next: dict[int, int] = {}
        self.set_timesteps(None)

    def set_timesteps(self, num_steps: int | None = None) -> list[int]:
        """Choose ``num_steps`` evenly spaced timesteps from T-1 down to 0 (None = all T)."""
        T = self.diffusion.timesteps
        n = T if num_steps is None else int(num_steps)
        if not 1 <= n <= T:
            raise ValueError(f"steps must be between 1 and {T}, got {num_steps}")
        if n == 1:
            self.timesteps = [T - 1]
            self._next = {T - 1: -1}
            return self.timesteps
        grid = torch.linspace(T - 1, 0, n, dtype=torch.float64).round().long().tolist()
        self.timesteps = sorted(set(grid), reverse=True)
        self._next = dict(zip(self.timesteps, self.timesteps[1:] + [-1], strict=True))
        return self.timesteps

    def previous_timestep(self, t: int) -> int:
        """The timestep that follows t in the chain (-1 after the last)."""
        return self._next[t]

    def init_sample(self, prior: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y_T ~ N(prior, I)."""
        return prior + gaussian_like(prior, generator)

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        prior: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """One reverse step from timestep t, given the predicted noise ``model_output``; the last step of the
        chain returns the y0 estimate."""
        raise NotImplementedError

    @staticmethod
    def _y0(eps, sample, prior, ab_t: float):
        """y0 from y_t and the noise: ``LabelDiffusion.q_sample`` inverted."""
        return (sample - (1 - math.sqrt(ab_t)) * prior - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)


class AffineSampler(Sampler):
    """A sampler whose rule (``_update``) is affine in its inputs: it offers ``coefficients``, each step as
    next = a * sample + b * prior + c * eps + sigma * noise, which the folded chain (``diffmic.lean``) uses
    instead of ``step``."""

    affine: ClassVar[bool] = True

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        prior: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """One reverse step from timestep t, given the predicted noise ``model_output``.

        The last step of the chain (t = 0 or the smallest chosen timestep) returns the y0 estimate.
        Fresh noise is drawn from ``generator`` exactly when the step has some (``coefficients``).
        """
        ab = self.diffusion.alphas_cumprod_list
        prev = self.previous_timestep(t)
        y0 = self._y0(model_output, sample, prior, ab[t])
        if prev < 0:
            return StepOutput(y0, y0)
        noise = gaussian_like(sample, generator) if self.coefficients(t)[3] > 0 else 0.0
        return StepOutput(self._update(model_output, sample, prior, y0, ab[t], ab[prev], noise), y0)

    def coefficients(self, t: int) -> tuple[float, float, float, float]:
        """The step from t as one linear map: next = a * sample + b * prior + c * eps + sigma * noise.

        The sampler's rule (``_update``) is affine in its inputs, so (a, b, c, sigma) are read off it by
        evaluating it on unit inputs; a fused chain (``diffmic.lean``) uses them instead of ``step``.
        """
        ab = self.diffusion.alphas_cumprod_list
        prev = self.previous_timestep(t)

        def rule(sample: float, prior: float, eps: float, noise: float) -> float:
            y0 = self._y0(eps, sample, prior, ab[t])
            return float(y0 if prev < 0 else self._update(eps, sample, prior, y0, ab[t], ab[prev], noise))

        return rule(1, 0, 0, 0), rule(0, 1, 0, 0), rule(0, 0, 1, 0), rule(0, 0, 0, 1)

    def _update(self, eps, sample, prior, y0, ab_t: float, ab_prev: float, noise):
        """The sample at the next timestep (alpha-bar ab_prev) from the one at ab_t: the sampler's rule."""
        raise NotImplementedError


def gaussian_cpu(shape: torch.Size, dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from a CPU ``generator``: every chain's draws, whatever its
    device, so a seed gives the same numbers everywhere (a generator belongs to one device)."""
    return torch.randn(shape, generator=generator, dtype=dtype, device="cpu")


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn on the CPU (``gaussian_cpu``) and moved to x's device."""
    return gaussian_cpu(x.shape, x.dtype, generator).to(x.device)


SAMPLERS: dict[str, type[Sampler]] = {}  # name → class, in the order offered


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Enter a sampler class in ``SAMPLERS`` under its ``name`` (a class decorator)."""
    if not cls.name or cls.name != cls.name.lower() or not cls.label:
        raise ValueError(f"a sampler needs a lower-case name and a label, got {cls.name!r} / {cls.label!r}")
    SAMPLERS[cls.name] = cls
    return cls


def sampler_class(name: str) -> type[Sampler]:
    """The registered sampler called ``name`` or labelled ``name`` (any case, e.g. ``DDIM`` from the app)."""
    key = str(name).strip().lower()
    for cls in SAMPLERS.values():
        if key in (cls.name, cls.label.lower()):
            return cls
    known = " or ".join(cls.name for cls in SAMPLERS.values())
    raise ValueError(f"unknown sampler {name!r}; use {known}")


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


def make_sampler(name: str, diffusion: LabelDiffusion, steps: int | None = None, eta: float = 0.0) -> Sampler:
    """Build a registered sampler by name (``SAMPLERS``: ``ddpm``, ``ddim``, ...) with its timesteps set."""
    sampler = sampler_class(name)(diffusion, eta=eta)
    sampler.set_timesteps(steps)
    return sampler
