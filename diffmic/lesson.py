"""What the app's Learn tab teaches, computed from the model's own diffusion: the noise schedule, the forward
process q(y_t | y0, prior), a reverse chain kept in label space as well as in probabilities, a prior a
teacher can change, and which example image shows the idea best (its prior differs from its true label).

The app only draws these: the schedule is ``LabelDiffusion``'s, the forward process its ``marginal`` and
``q_sample``, and the reverse chain ``DiffMICPipeline.denoise`` (with the image's own prior it is the very
chain ``DiffMICPipeline.run`` gives).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .diffusion import LabelDiffusion
from .imageio import ImageLoadError
from .noise import gaussian_cpu
from .options import SamplingOptions
from .trajectory import Trajectory

if TYPE_CHECKING:
    from .pipeline import DiffMICPipeline
    from .pipeline_outputs import Prepared


@dataclass(frozen=True)
class Schedule:
    """The noise schedule at t = 0 … T-1 (0-based, as the samplers count), each (T,)."""

    beta: np.ndarray  # β_t, the variance added at step t
    alpha_bar: np.ndarray  # ᾱ_t = ∏ (1 − β_s): how much of y0 is left (in variance)
    prior_weight: np.ndarray  # 1 − √ᾱ_t: the prior's weight in the mean of q(y_t | y0, prior)
    noise_sd: np.ndarray  # √(1 − ᾱ_t): the standard deviation of q(y_t | y0, prior)

    @property
    def T(self) -> int:
        """Number of timesteps."""
        return len(self.beta)


def schedule(diffusion: LabelDiffusion) -> Schedule:
    """The schedule held by ``diffusion`` (its buffers, read back to the CPU)."""

    def cpu(values: torch.Tensor) -> np.ndarray:
        return values.detach().cpu().numpy().astype(np.float64)

    return Schedule(
        beta=cpu(diffusion.betas),
        alpha_bar=cpu(diffusion.alphas_cumprod),
        prior_weight=1.0 - cpu(diffusion.sqrt_alphas_cumprod),
        noise_sd=cpu(diffusion.sqrt_one_minus_alphas_cumprod),
    )


def one_hot(index: int, n: int) -> np.ndarray:
    """The one-hot label vector y0 of class ``index``."""
    y = np.zeros(n, np.float32)
    y[index] = 1.0
    return y


def lesson_prior(prior: np.ndarray, favour: int | None = None, towards_uniform: float = 0.0) -> np.ndarray:
    """The prior mean a lesson centres the chain on: the image's own ``prior``, or all of it on the class
    ``favour``; then blended towards the uniform prior by ``towards_uniform`` (0 = as chosen, 1 = uniform).
    A probability vector (C,)."""
    prior = np.asarray(prior, np.float64).reshape(-1)
    if not 0.0 <= towards_uniform <= 1.0:
        raise ValueError(f"the blend towards uniform must be between 0 and 1, got {towards_uniform}")
    base = prior if favour is None else one_hot(favour, len(prior)).astype(np.float64)
    mixed = (1.0 - towards_uniform) * base + towards_uniform / len(prior)
    return mixed.astype(np.float32)


@dataclass(frozen=True)
class ForwardMarginals:
    """q(y_t | y0, prior) at every t = 0 … T-1 for one label, and draws from it."""

    mean: np.ndarray  # (T, C) √ᾱ_t·y0 + (1 − √ᾱ_t)·prior
    std: np.ndarray  # (T,) √(1 − ᾱ_t), shared by every class
    draws: np.ndarray  # (T, D, C) y_t drawn with the same noise at every t (each draw moves smoothly with t)


def forward_marginals(
    diffusion: LabelDiffusion, y0: np.ndarray, prior: np.ndarray, draws: int = 24, seed: int = 0
) -> ForwardMarginals:
    """The forward process at every timestep, from ``LabelDiffusion.marginal`` and ``q_sample``."""
    T, c = diffusion.timesteps, len(y0)
    device = diffusion.betas.device
    t = torch.arange(T, device=device)
    y0_rows = torch.as_tensor(np.asarray(y0), dtype=torch.float32, device=device).expand(T, c)
    prior_rows = torch.as_tensor(np.asarray(prior), dtype=torch.float32, device=device).expand(T, c)
    with torch.no_grad():
        mean, std = diffusion.marginal(y0_rows, prior_rows, t)
        noise = gaussian_cpu((draws, c), torch.float32, torch.Generator().manual_seed(seed)).to(device)
        drawn = diffusion.q_sample(
            y0_rows.repeat_interleave(draws, 0),
            prior_rows.repeat_interleave(draws, 0),
            t.repeat_interleave(draws),
            noise.repeat(T, 1),
        ).view(T, draws, c)
    return ForwardMarginals(mean.cpu().numpy(), std[:, 0].cpu().numpy(), drawn.cpu().numpy())


@dataclass
class ReverseChain:
    """One image's reverse chain: the class probabilities of every run after every step (the pipeline's
    ``Trajectory``) and the label vectors they are the softmax of."""

    trajectory: Trajectory
    labels: np.ndarray  # (steps, N, C) label vector y of every run after each step
    options: SamplingOptions
    seconds: float

    @property
    def prior(self) -> np.ndarray:
        """(C,) the prior mean the chain was centred on."""
        return self.trajectory.prior

    @property
    def steps(self) -> int:
        """Number of reverse steps run."""
        return self.trajectory.steps_done

    @property
    def probabilities(self) -> np.ndarray:
        """(C,) the answer: the mean over the runs of the final probabilities (``answer_probabilities``)."""
        return self.trajectory.mean[-1]

    @property
    def answer(self) -> int:
        """The class with the highest answer probability."""
        return int(self.probabilities.argmax())

    def index_at(self, t: float) -> int:
        """The step whose timestep is the nearest to ``t`` (the chain's timesteps run from T-1 down to 0)."""
        return int(np.abs(self.trajectory.timesteps - t).argmin())


def reverse_chain(
    pipe: DiffMICPipeline, prepared: Prepared, options: SamplingOptions, prior: np.ndarray | None = None
) -> ReverseChain:
    """Run the reverse chain of a prepared image (``DiffMICPipeline.denoise``) centred on ``prior`` (C,),
    or on the prior ``options.prior`` names when None, keeping every step in label space too."""
    conditioning = prepared.conditioning
    if prior is None:
        centre = conditioning.prior(options.prior)
    else:
        centre = torch.as_tensor(
            np.asarray(prior, np.float32).reshape(1, -1),
            dtype=conditioning.features.dtype,
            device=conditioning.features.device,
        )
    start = time.perf_counter()
    trajectory = Trajectory(pipe.config.class_names, options.samples, centre[0].detach().cpu())
    labels = []
    for state in pipe.denoise(conditioning.features, centre, options):
        trajectory.record(state)
        labels.append(state.sample[0].detach().cpu().numpy())
    return ReverseChain(trajectory, np.stack(labels), options, time.perf_counter() - start)


@dataclass(frozen=True)
class LessonImage:
    """The example image a lesson starts on, with the model's prior for it."""

    index: int  # among the candidates
    prior: np.ndarray  # (C,) the model's fused prior of the image
    label: int  # its true class
    differs: bool  # the prior's top class is not the true label


def choose_lesson_image(priors: Sequence[np.ndarray | None], labels: Sequence[int | None]) -> int | None:
    """Which candidate shows best that the chain starts from the prior, not from the truth: among those whose
    prior's top class is not the true label (all candidates when none is), the one whose prior gives the
    true label the least probability. None when no candidate has both a prior and a label."""
    known = [
        (i, p, k)
        for i, (p, k) in enumerate(zip(priors, labels, strict=True))
        if p is not None and k is not None
    ]
    if not known:
        return None
    wrong = [c for c in known if int(np.argmax(c[1])) != c[2]]
    return min(wrong or known, key=lambda c: (float(c[1][c[2]]), c[0]))[0]


def lesson_image(pipe: DiffMICPipeline, images: Sequence, labels: Sequence[int | None]) -> LessonImage | None:
    """``choose_lesson_image`` on the model's own fused priors of ``images`` (paths, arrays or PIL images;
    an unreadable one is passed over)."""
    priors: list[np.ndarray | None] = []
    for image, label in zip(images, labels, strict=True):
        if label is None:
            priors.append(None)
            continue
        try:
            prepared = pipe.prepare(image)
        except (ImageLoadError, ValueError, OSError):
            priors.append(None)
            continue
        priors.append(prepared.conditioning.prior("fused")[0].detach().cpu().numpy())
    index = choose_lesson_image(priors, labels)
    if index is None:
        return None
    prior, label = priors[index], int(labels[index])
    return LessonImage(index, prior, label, int(np.argmax(prior)) != label)
