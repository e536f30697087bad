"""The lesson's two processes as the Learn tab draws them: the forward process, q(y_t | y₀, prior) at every
timestep for ``forward_figure`` (``forward_process``, from ``diffmic.lesson.forward_marginals``), and the
reverse chains, DDPM, DDIM and the zero-mean one, each drawn with its caption (``chain_figures``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffmic.lesson import ReverseChain, forward_marginals, schedule
from diffmic.pipeline import DiffMICPipeline

from . import figures
from .forward_figure import ForwardProcess, frame_timesteps
from .lesson_words import chain_caption
from .settings import DEFAULT_SAMPLES

SAMPLES = DEFAULT_SAMPLES  # runs per chain: Diagnose's default
DRAWS = 24
CHAIN_HEIGHT = 360


def forward_process(
    pipe: DiffMICPipeline, y0: np.ndarray, prior: np.ndarray, labels: list[str], seed: int = 0
) -> ForwardProcess:
    """q(y_t | y₀, prior) at every timestep (``diffmic.lesson.forward_marginals``), for the figure."""
    diffusion = pipe.model.diffusion
    marginals = forward_marginals(diffusion, y0, prior, DRAWS, seed)
    return ForwardProcess(
        class_names=list(pipe.config.class_names),
        labels=labels,
        y0=np.asarray(y0, np.float32),
        prior=np.asarray(prior, np.float32),
        mean=marginals.mean,
        std=marginals.std,
        draws=marginals.draws,
        alphas_bar=schedule(diffusion).alpha_bar,
        frames=frame_timesteps(diffusion.timesteps),
    )


def chain_figures(T: int, chains: tuple, names: list[str], labels: list[str], task: str | None) -> dict:
    """The four chain figures and their two captions (the lesson's DDPM, DDIM and zero-mean chains)."""
    ddpm, ddim, none = chains

    def fig(chain: ReverseChain, title: str, prior_label: str = "prior") -> Any:
        return figures.trajectory_figure(
            chain.trajectory, T, title=title, prior_label=prior_label, labels=labels,
            height=CHAIN_HEIGHT, from_prior=False,
        )  # fmt: skip

    caption = lambda what, chain: chain_caption(what, chain, names, task)  # noqa: E731
    return dict(
        ddpm=fig(ddpm, f"DDPM: all {ddpm.steps} steps"),
        ddim=fig(ddim, f"DDIM (η = 0): {ddim.steps} steps"),
        with_prior=fig(ddpm, "DDPM with the prior"),
        without_prior=fig(none, "DDPM without the prior (zero mean)", prior_label="zero mean"),
        sampler_note=f"{caption('DDPM', ddpm)} · {caption('DDIM', ddim)}. " + figures.band_note(SAMPLES),
        prior_note=f"{caption('with the prior', ddpm)} · {caption('with a zero mean', none)}.",
    )
