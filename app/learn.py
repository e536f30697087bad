"""Handlers of the Learn tab: the forward process, DDPM vs DDIM, and the chain with vs without the prior.

All the maths comes from ``diffmic``: ``model.diffusion.q_sample`` for the forward process and
``model.stream(..., prior=...)`` for the reverse chains; this module only arranges the figures.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from diffmic.hub import ModelLoadError
from diffmic.model import DiffMIC, Prepared

from . import figures
from .assets import class_index, label_from_filename, list_examples
from .diagnose import UserError, read_upload
from .forward_figure import forward_process_figure
from .models import ModelRegistry
from .settings import DEFAULT_DDIM_STEPS, Settings
from .trajectory import Trajectory
from .widgets import disclaimer, error_box, model_dropdown, show_error

log = logging.getLogger(__name__)

SAMPLES = 4
FRAMES = 36
DRAWS = 24
CHAIN_HEIGHT = 380

FORWARD_TEXT = (
    "**The forward process** destroys the label. At t = 0 the label vector is the one-hot vector of the true "
    "class. Every step mixes in a little of the image's *prior mean* (the DCG's guess) and a little Gaussian "
    "noise: q(y_t | y₀, prior) = N(√ᾱ_t·y₀ + (1−√ᾱ_t)·prior, (1−ᾱ_t)·I). By t = T nothing of the truth is "
    "left: y_T ~ N(prior, I). Press ▶ to watch it happen."
)
SAMPLER_TEXT = (
    "**DDPM vs DDIM.** DiffMIC classifies by running the forward process backwards: it starts at y_T ~ "
    "N(prior, I) and removes the predicted noise step by step. DDPM takes all T small steps and adds fresh "
    "noise at each, so every sample wanders; DDIM (η = 0) jumps along a deterministic path with far fewer "
    "steps. Both usually end at the same answer; DDIM gets there much faster."
)
PRIOR_TEXT = (
    "**With vs without the prior mean.** In DiffMIC the chain is centred on the DCG prior: it starts near "
    "the network's first guess and only has to refine it. With a zero mean instead (plain label diffusion) "
    "the chain starts from pure noise and the denoiser, which was trained with the prior, has to do all the "
    "work, so the answer is often less sure or different."
)


def one_hot(index: int, n: int) -> np.ndarray:
    """The one-hot label vector y₀."""
    y = np.zeros(n, np.float32)
    y[index] = 1.0
    return y


def forward_timesteps(T: int, frames: int = FRAMES) -> np.ndarray:
    """About ``frames`` timesteps from 0 to T-1, denser at small t where the label changes fastest."""
    ts = np.unique(np.round(np.geomspace(1, T, frames)).astype(np.int64) - 1)
    return np.unique(np.concatenate([[0], ts, [T - 1]]))


def forward_process(
    model: DiffMIC, y0: np.ndarray, prior: np.ndarray, seed: int = 0
) -> dict[str, np.ndarray]:
    """Means, standard deviations and draws of q(y_t | y₀, prior) at a set of timesteps (via q_sample)."""
    diffusion = model.diffusion
    ts = forward_timesteps(diffusion.timesteps)
    f, c = len(ts), len(y0)
    t_rows = torch.as_tensor(ts)
    y0_rows = torch.as_tensor(y0).expand(f, c)
    prior_rows = torch.as_tensor(prior, dtype=torch.float32).expand(f, c)
    mean = diffusion.q_sample(y0_rows, prior_rows, t_rows, torch.zeros(f, c))
    sd = diffusion.q_sample(torch.zeros(f, 1), torch.zeros(f, 1), t_rows, torch.ones(f, 1))[:, 0]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(f, DRAWS, c, generator=generator)
    draws = diffusion.q_sample(
        y0_rows[:, None].expand(f, DRAWS, c).reshape(-1, c),
        prior_rows[:, None].expand(f, DRAWS, c).reshape(-1, c),
        t_rows.repeat_interleave(DRAWS),
        noise.reshape(-1, c),
    ).view(f, DRAWS, c)
    return dict(
        ts=ts,
        alphas_bar=diffusion.alphas_cumprod[t_rows].numpy(),
        mean=mean.numpy(),
        sd=sd.numpy(),
        draws=draws.numpy(),
    )


def run_chain(model: DiffMIC, prepared: Prepared, sampler: str, steps: int | None, prior: str) -> tuple:
    """Run one chain and return its trajectory, prediction and time."""
    start = time.perf_counter()
    mean = (
        prepared.guidance.fused_prior if prior == "fused" else torch.zeros_like(prepared.guidance.fused_prior)
    )
    traj = Trajectory(model.config.class_names, SAMPLES, mean[0].cpu().numpy())
    state = None
    for state in model.stream(prepared, sampler=sampler, steps=steps, samples=SAMPLES, seed=0, prior=prior):
        traj.record(state)
    pred = model.summarise(prepared.guidance, state, sampler, 0, time.perf_counter() - start)
    return traj, pred


def caption(label: str, traj: Trajectory, pred: Any) -> str:
    """One line under a chain figure: steps, time and answer."""
    p = pred.probabilities[pred.label]
    return f"**{label}**: {traj.steps_done} steps in {pred.seconds:.2f} s → **{pred.label}** (p = {p:.2f})"


class Lessons:
    """The Learn tab's handler, bound to a model registry and the examples."""

    def __init__(self, registry: ModelRegistry, settings: Settings):
        self.registry = registry
        self.settings = settings

    def image_choices(self) -> list[tuple[str, str]]:
        """(caption, path) of the example images."""
        return [(f"{e.task} · {e.label}", str(e.path)) for e in list_examples(self.settings.assets_dir)]

    def _image(self, example: Any, model: DiffMIC) -> tuple[Image.Image, str | None]:
        """The chosen example (or a generated one when there are no examples) and its true label."""
        if example:
            if str(example) not in {path for _, path in self.image_choices()}:
                raise UserError("pick one of the example images")
            return read_upload(example), label_from_filename(Path(str(example)))
        try:
            from diffmic.data.synthetic import TASKS, generate_sample

            task = model.config.task if model.config.task in TASKS else "fundus"
            sample = generate_sample(task, 0, 0, model.config.image_size)
            return Image.fromarray(sample.image), TASKS[task].class_names[sample.label]
        except Exception:  # no generator for this model: a neutral image
            return Image.new("RGB", (model.config.image_size,) * 2, (120, 110, 100)), None

    def run(self, model_choice: str, example: Any) -> tuple:
        """All Learn figures and captions, or a visible error (then every other output is left as it was)."""
        outputs = 9
        try:
            selection = self.registry.get(model_choice)
            model = selection.model
            image, true_label = self._image(example, model)
        except (UserError, ModelLoadError) as err:
            gr.Warning(str(err))
            return show_error(outputs, str(err))
        try:
            return self._lessons(model, image, true_label, selection.notice)
        except Exception as err:
            log.exception("lessons failed")
            message = f"the lesson failed ({type(err).__name__}: {err})"
            gr.Warning(message)
            return show_error(outputs, message)

    def _lessons(
        self, model: DiffMIC, image: Image.Image, true_label: str | None, notice: str | None
    ) -> tuple:
        names = model.config.class_names
        t_max = model.config.timesteps - 1
        prepared = model.prepare(image)
        fused = prepared.guidance.fused_prior[0].cpu().numpy()
        k = class_index(true_label, names) if true_label else None
        k = int(fused.argmax()) if k is None else k
        fp = forward_process(model, one_hot(k, len(names)), fused)
        forward_fig = forward_process_figure(names, y0=one_hot(k, len(names)), prior=fused, **fp)
        forward_note = f"y₀ = one-hot of **{names[k]}**; the prior mean is this image's fused DCG prior."

        ddim_steps = min(DEFAULT_DDIM_STEPS, model.config.timesteps)
        ddpm, ddpm_pred = run_chain(model, prepared, "ddpm", None, "fused")
        ddim, ddim_pred = run_chain(model, prepared, "ddim", ddim_steps, "fused")
        none, none_pred = run_chain(model, prepared, "ddpm", None, "none")
        ddpm_fig = figures.trajectory_figure(
            ddpm, t_max, title=f"DDPM: all {ddpm.steps_done} steps", height=CHAIN_HEIGHT
        )
        ddim_fig = figures.trajectory_figure(
            ddim, t_max, title=f"DDIM (η = 0): {ddim.steps_done} steps", height=CHAIN_HEIGHT
        )
        with_fig = figures.trajectory_figure(
            ddpm, t_max, title="DDPM with the fused prior", height=CHAIN_HEIGHT
        )
        none_fig = figures.trajectory_figure(
            none,
            t_max,
            title="DDPM without the prior (zero mean)",
            prior_label="zero mean",
            height=CHAIN_HEIGHT,
        )
        notes = [
            forward_note + (f"\n\n⚠️ {notice}" if notice else ""),
            caption("DDPM", ddpm, ddpm_pred) + " · " + caption("DDIM", ddim, ddim_pred),
            caption("with the fused prior", ddpm, ddpm_pred)
            + " · "
            + caption("with a zero mean", none, none_pred),
        ]
        return (
            forward_fig,
            ddpm_fig,
            ddim_fig,
            with_fig,
            none_fig,
            *notes,
            gr.update(value="", visible=False),
        )


def build_learn_tab(lessons: Lessons, registry: ModelRegistry) -> None:
    """The Learn tab's layout and events (inside a gr.Tab)."""
    choices = lessons.image_choices()
    task = registry.default_choice()
    first = next((path for caption, path in choices if caption.startswith(f"{task} ·")), None)
    disclaimer()
    with gr.Row():
        model = model_dropdown(registry, "learn-model")
        image = gr.Dropdown(
            choices,
            value=first or (choices[0][1] if choices else None),
            label="Image",
            elem_id="learn-image",
            info="An example image (or a generated one if there are none).",
        )
        show = gr.Button("Show me", variant="primary", elem_id="learn-run", scale=0, min_width=140)
    error = error_box("learn-error")
    gr.Markdown(FORWARD_TEXT)
    forward = gr.Plot(
        figures.empty_figure("Press “Show me”", 420), label="Forward process", elem_id="forward"
    )
    forward_note = gr.Markdown("")
    gr.Markdown(SAMPLER_TEXT)
    with gr.Row():
        ddpm = gr.Plot(figures.empty_figure("DDPM", 380), label="DDPM", elem_id="learn-ddpm")
        ddim = gr.Plot(figures.empty_figure("DDIM", 380), label="DDIM", elem_id="learn-ddim")
    sampler_note = gr.Markdown("")
    gr.Markdown(PRIOR_TEXT)
    with gr.Row():
        with_prior = gr.Plot(figures.empty_figure("with the prior", 380), label="With the prior")
        without_prior = gr.Plot(figures.empty_figure("without the prior", 380), label="Without the prior")
    prior_note = gr.Markdown("")
    show.click(
        lessons.run,
        [model, image],
        [forward, ddpm, ddim, with_prior, without_prior, forward_note, sampler_note, prior_note, error],
        api_visibility="undocumented",
        api_name="learn",
    )
