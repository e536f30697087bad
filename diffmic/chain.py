"""The reverse-diffusion loop: from y_T ~ N(prior, I) to y0, one yielded state per step.

``denoise_steps`` is the whole algorithm, written out (as in diffusers' pipelines): encode nothing,
know no network, only call ``eps_fn`` and ``sampler.step``. It is batched over B images and N
stochastic samples per image, and yields a ``DenoiseState`` after every step so a UI can stream the
trajectory; ``denoise`` drains it and returns the last state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import torch

from .sampler import Sampler

EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (y_t, t, prior) rows → eps


@dataclass
class DenoiseState:
    """The state after one reverse step, for B images x N samples x C classes."""

    index: int  # 0-based position in the chain
    total: int  # number of steps in the chain
    t: int  # the timestep just denoised (T-1 ... 0)
    sample: torch.Tensor  # (B, N, C) label vector after this step (y_{t-1}; y0 after the last step)
    temperature: float = 1.0  # of the probabilities

    @property
    def is_last(self) -> bool:
        """True for the final state, whose sample is the answer."""
        return self.index == self.total - 1

    @cached_property
    def probs(self) -> torch.Tensor:
        """(B, N, C) class probabilities: softmax(sample / temperature) (computed when first read)."""
        return label_to_probs(self.sample, self.temperature)

    @property
    def mean_probs(self) -> torch.Tensor:
        """(B, C) probabilities averaged over the N samples."""
        return self.probs.mean(1)


def label_to_probs(y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Label vectors → class probabilities: softmax(y / T), T calibrated on validation data."""
    return (y / temperature).softmax(-1)


def denoise_steps(
    eps_fn: EpsFn,
    prior: torch.Tensor,
    sampler: Sampler,
    samples: int = 1,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Iterator[DenoiseState]:
    """Run the sampler's chain from y_T ~ N(prior, I), yielding the state after every step.

    ``prior`` is (B, C); ``eps_fn`` gets (B*N, C) rows of y_t, timesteps and priors, the rows of one
    image contiguous (image-major), and returns the predicted noise.
    """
    b, c = prior.shape
    rows_prior = prior.repeat_interleave(samples, dim=0)
    y = sampler.init_sample(rows_prior, generator)
    total = len(sampler.timesteps)
    for i, t in enumerate(sampler.timesteps):
        with torch.inference_mode():
            eps = eps_fn(y, torch.full((b * samples,), t, dtype=torch.long, device=y.device), rows_prior)
            out = sampler.step(eps, t, y, rows_prior, generator=generator)
        y = out.prev_sample
        yield DenoiseState(i, total, t, y.view(b, samples, c), temperature)


def denoise(
    eps_fn: EpsFn,
    prior: torch.Tensor,
    sampler: Sampler,
    samples: int = 1,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> DenoiseState:
    """The fast path: run the whole chain and return only the final state."""
    return last_state(denoise_steps(eps_fn, prior, sampler, samples, generator, temperature))


def last_state(states: Iterator[DenoiseState]) -> DenoiseState:
    """Drain a stream of states and return the final one."""
    final = deque(states, maxlen=1)
    if not final:
        raise ValueError("the chain produced no steps")
    return final[0]
