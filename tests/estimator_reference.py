"""The documented estimator written out for the tests: the chains' final label vectors y_0 from the plain
reverse loop (``diffmic.chain.denoise_steps`` on the unfolded denoiser, not the pipeline's folded chain),
then the mean over chains of softmax(y_0 / T) in numpy float64, T read from the model's config.

It calls nothing of ``diffmic.uncertainty``, ``diffmic.pipeline`` or ``DenoiseState.probs``, so a test can
hold every place that shows an answer against it.
"""

from __future__ import annotations

import numpy as np
import torch

from diffmic.chain import denoise_steps, last_state
from diffmic.diffusion import make_sampler
from diffmic.model import DiffMIC
from diffmic.options import SamplingOptions


def final_label_vectors(model: DiffMIC, x: torch.Tensor, options: SamplingOptions) -> np.ndarray:
    """y_0 (B, N, C) of ``options.samples`` chains per image of a preprocessed batch, seeded as the
    pipeline seeds a batch (one generator from ``options.seed``, image-major rows)."""
    n = options.samples
    with torch.inference_mode():
        conditioning = model.condition(x)
        gates = model.denoiser.gate(conditioning.features).repeat_interleave(n, dim=0)
    sampler = make_sampler(options.sampler, model.diffusion, options.steps, options.eta)
    generator = torch.Generator().manual_seed(int(options.seed))

    def eps(y_t: torch.Tensor, t: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return model.eps(gates, y_t, t, prior)

    prior = conditioning.prior(options.prior)
    return last_state(denoise_steps(eps, prior, sampler, n, generator)).sample.double().numpy()


def chain_probabilities(y0: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(y_0 / T) of every chain, (..., N, C)."""
    z = np.asarray(y0, np.float64) / temperature
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def expected_answer(
    model: DiffMIC, x: torch.Tensor, options: SamplingOptions
) -> tuple[np.ndarray, np.ndarray]:
    """(B, C) the answer — the mean over the chains of softmax(y_0 / T) — and the chains' y_0 (B, N, C)."""
    y0 = final_label_vectors(model, x, options)
    return chain_probabilities(y0, model.config.temperature).mean(1), y0
