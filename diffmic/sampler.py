"""The sampler API (diffusers' scheduler API): ``Sampler`` (``set_timesteps``, ``step`` → ``StepOutput``),
``AffineSampler`` (``coefficients``: the folded fast path), and the table ``SAMPLERS`` that
``register_sampler`` enters a sampler class in. ``diffusion.SAMPLERS`` is that table with the built-in
samplers in it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from .noise import gaussian_like

if TYPE_CHECKING:
    from .diffusion import LabelDiffusion


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


SAMPLERS: dict[str, type[Sampler]] = {}  # name → class, in the order offered


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Enter a sampler class in ``SAMPLERS`` under its ``name`` (a class decorator)."""
    if not cls.name or cls.name != cls.name.lower() or not cls.label:
        raise ValueError(f"a sampler needs a lower-case name and a label, got {cls.name!r} / {cls.label!r}")
    SAMPLERS[cls.name] = cls
    return cls
