"""Handlers of the Learn tab: the forward process (played and scrubbed), DDPM vs DDIM, and the chain with
vs without the prior.

The maths is the package's: ``LabelDiffusion.marginal`` and ``q_sample`` give the forward process, and
``DiffMICPipeline`` runs the chains (``SamplingOptions(prior="none")`` for the chain without the prior);
this module only chooses what to show.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from diffmic.diffusion import gaussian_cpu
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICOutput, DiffMICPipeline, Prepared

from . import figures, report
from .assets import class_index, list_examples
from .controls import read_upload
from .errors import UserError, error_markdown, on_error
from .forward_figure import ForwardProcess, forward_figure, frame_timesteps
from .models import ModelRegistry
from .settings import DEFAULT_DDIM_STEPS, Settings

SAMPLES = 4
DRAWS = 24
CHAIN_HEIGHT = 360
GENERATED = "generated"  # the image choice of a model whose task has no examples
N_OUTPUTS = 12  # forward, t, forward state, 4 chain figures, 3 notes, error, shown

FORWARD_TEXT = (
    "**The forward process** destroys the label. At t = 0 the label vector y₀ is the one-hot vector of the "
    "true class. Every step mixes in a little of the image's *prior* (the guidance network's guess) and a "
    "little Gaussian noise: q(y_t | y₀, prior) = N(√ᾱ_t·y₀ + (1−√ᾱ_t)·prior, (1−ᾱ_t)·I). By t = T nothing "
    "of the truth is left: y_T ~ N(prior, I). Press **Play**, or drag the slider."
)
SAMPLER_TEXT = (
    "**DDPM vs DDIM.** DiffMIC classifies by running the forward process backwards: it starts at "
    "y_T ~ N(prior, I) and removes the predicted noise step by step. DDPM takes all T small steps and adds "
    "fresh noise at each, so every run wanders before it settles; DDIM (η = 0) jumps along a deterministic "
    "path in far fewer steps. Both usually end at the same answer; DDIM gets there much faster."
)
PRIOR_TEXT = (
    "**With vs without the prior.** In DiffMIC the chain is centred on the prior: it starts near the "
    "network's first guess and only has to refine it. With a zero mean instead (plain label diffusion) the "
    "chain starts from pure noise and the denoiser, which was trained with the prior, has to do all the "
    "work, so the answer is often less sure or different."
)


def one_hot(index: int, n: int) -> np.ndarray:
    """The one-hot label vector y₀."""
    y = np.zeros(n, np.float32)
    y[index] = 1.0
    return y


def forward_process(
    pipe: DiffMICPipeline, y0: np.ndarray, prior: np.ndarray, labels: list[str], seed: int = 0
) -> ForwardProcess:
    """q(y_t | y₀, prior) at every timestep, from ``LabelDiffusion.marginal``, and draws from ``q_sample``
    with the same noise at every t (so each dot moves smoothly while t changes)."""
    diffusion = pipe.model.diffusion
    T, c = diffusion.timesteps, len(y0)
    device = diffusion.betas.device
    t = torch.arange(T, device=device)
    y0_rows = torch.as_tensor(y0, dtype=torch.float32, device=device).expand(T, c)
    prior_rows = torch.as_tensor(prior, dtype=torch.float32, device=device).expand(T, c)
    with torch.no_grad():
        mean, std = diffusion.marginal(y0_rows, prior_rows, t)
        noise = gaussian_cpu((DRAWS, c), torch.float32, torch.Generator().manual_seed(seed)).to(device)
        draws = diffusion.q_sample(
            y0_rows.repeat_interleave(DRAWS, 0),
            prior_rows.repeat_interleave(DRAWS, 0),
            t.repeat_interleave(DRAWS),
            noise.repeat(T, 1),
        ).view(T, DRAWS, c)
    return ForwardProcess(
        class_names=list(pipe.config.class_names),
        labels=labels,
        y0=np.asarray(y0, np.float32),
        prior=np.asarray(prior, np.float32),
        mean=mean.cpu().numpy(),
        std=std[:, 0].cpu().numpy(),
        draws=draws.cpu().numpy(),
        alphas_bar=diffusion.alphas_cumprod.cpu().numpy(),
        frames=frame_timesteps(T),
    )


def chain_caption(what: str, output: DiffMICOutput, task: str | None) -> str:
    """One line under a chain figure: steps, time and answer."""
    p = output.probabilities[output.label]
    return (
        f"**{what}**: {output.steps} steps in {output.seconds:.2f} s → "
        f"**{report.full_name(task, output.label)}** (probability {report.percent(p)})"
    )


def measured_note(evaluation: dict | None) -> str:
    """One sentence on how the model does on held-out images (from its ``evaluation.json``), or ''."""
    if not evaluation:
        return ""
    acc = evaluation.get("accuracy", {})
    parts = [
        f"{what} {acc[key]:.0%}"
        for key, what in (
            ("fused", "the prior alone"),
            ("diffmic_single", "one denoised chain"),
            ("diffmic", f"DiffMIC ({evaluation.get('samples', 8)} chains averaged)"),
            ("cnn", "a plain CNN"),
        )
        if key in acc
    ]
    if not parts:
        return ""
    best = evaluation.get("ceiling")
    limit = (
        f" No classifier can do better than {best:.0%} on these images: the rest show the lesions of a "
        "neighbouring class, and those errors are irreducible (the Bayes rule on what each image shows)."
        if best
        else ""
    )
    return (
        f"\n\nOn {evaluation.get('n', '?')} held-out generated images this model is right: "
        + ", ".join(parts)
        + "."
        + limit
    )


def error_outputs(message: str) -> tuple:
    """The error shown, every Learn figure cleared (they no longer match the choices)."""
    blank = figures.empty_figure("Choose a model and an image", CHAIN_HEIGHT)
    return (
        figures.empty_figure("Choose a model and an image", 420),
        gr.update(value=0),
        None,
        *(blank,) * 4,
        "",
        "",
        "",
        gr.update(value=error_markdown(message), visible=True),
        None,
    )


class Lessons:
    """The Learn tab's handlers, bound to a model registry and the examples."""

    def __init__(self, registry: ModelRegistry, settings: Settings):
        self.registry = registry
        self.settings = settings

    # ------------------------------------------------------------------ which images
    def image_choices(self, task: str | None) -> list[tuple[str, str]]:
        """(caption, path) of the examples of ``task``; a generated image when it has none."""
        examples = [e for e in list_examples(self.settings.assets_dir) if e.task == task]
        if examples:
            return [(f"{e.label} (true label){'' if e.path.suffix != '.dcm' else ', DICOM'}", str(e.path))
                    for e in examples]  # fmt: skip
        return [(f"a generated {task} image" if task else "a plain grey image", GENERATED)]

    def images_for(self, model_choice: str) -> dict:
        """The image menu for a model: its task's examples only, the first chosen."""
        choices = self.image_choices(self.registry.task_of(model_choice))
        return gr.update(choices=choices, value=choices[0][1])

    def _image(self, example: Any, pipe: DiffMICPipeline) -> tuple[Image.Image, str | None]:
        """The chosen example (or a generated one) and its true label; refuses another task's image."""
        task = pipe.config.task
        allowed = {path: caption for caption, path in self.image_choices(task)}
        if str(example or "") not in allowed:
            raise UserError(f"pick one of the {task or 'model'}'s own example images")
        if example != GENERATED:
            label = next(e.label for e in list_examples(self.settings.assets_dir) if str(e.path) == example)
            return read_upload(example), label
        from diffmic.data.synthetic import GENERATORS, generate_sample

        size = pipe.config.input_size
        if task not in GENERATORS:
            return Image.new("RGB", (size, size), (120, 110, 100)), None
        sample = generate_sample(task, 0, 0, size)
        return Image.fromarray(sample.image), GENERATORS[task].class_names[sample.label]

    # ------------------------------------------------------------------ the lessons
    @on_error(error_outputs, "lesson")
    def run(self, model_choice: str, example: Any) -> tuple:
        """All Learn figures and captions for a model and an image."""
        selection = self.registry.get(model_choice)
        pipe, task = selection.pipe, selection.task
        image, true_label = self._image(example, pipe)
        names = list(pipe.config.class_names)
        labels = [report.full_name(task, n) for n in names]
        prepared = pipe.prepare(image)
        fused = prepared.conditioning.prior("fused")[0].cpu().numpy()
        k = class_index(true_label, names) if true_label else None
        source = "this image's true label"
        if k is None:
            k, source = int(fused.argmax()), "the prior's top class (the true label is unknown)"
        fp = forward_process(pipe, one_hot(k, len(names)), fused, labels)
        forward_note = (
            f"y₀ = one-hot of **{labels[k]}**, {source}; the prior is this image's fused prior."
            + (f"\n\n**Note:** {selection.notice}" if selection.notice else "")
        )
        figs, (sampler_note, prior_note) = self._chains(pipe, prepared, labels, task)
        prior_note += measured_note(self.registry.evaluation_of(model_choice))
        return (
            forward_figure(fp, 0),
            gr.update(value=0, maximum=fp.T - 1),
            fp,
            *figs,
            forward_note,
            sampler_note,
            prior_note,
            gr.update(value="", visible=False),
            shown_key(model_choice, example),
        )

    def _chains(
        self, pipe: DiffMICPipeline, prepared: Prepared, labels: list[str], task: str | None
    ) -> tuple:
        T = pipe.config.timesteps
        base = SamplingOptions(sampler="ddpm", samples=SAMPLES, seed=0)
        ddpm = pipe(prepared, base)
        ddim = pipe(prepared, base.with_(sampler="ddim", steps=min(DEFAULT_DDIM_STEPS, T)))
        none = pipe(prepared, base.with_(prior="none"))

        def fig(output: DiffMICOutput, title: str, prior_label: str = "prior") -> Any:
            return figures.trajectory_figure(
                output.trajectory, T, title=title, prior_label=prior_label, labels=labels, height=CHAIN_HEIGHT
            )

        figs = (
            fig(ddpm, f"DDPM: all {ddpm.steps} steps"),
            fig(ddim, f"DDIM (η = 0): {ddim.steps} steps"),
            fig(ddpm, "DDPM with the prior"),
            fig(none, "DDPM without the prior (zero mean)", prior_label="zero mean"),
        )
        notes = (
            f"{chain_caption('DDPM', ddpm, task)} · {chain_caption('DDIM', ddim, task)}. "
            + figures.band_note(SAMPLES),
            f"{chain_caption('with the prior', ddpm, task)} · "
            f"{chain_caption('with a zero mean', none, task)}.",
        )
        return figs, notes

    def on_open(self, shown: Any, model_choice: str, example: Any) -> tuple:
        """The tab was opened: show the figures unless those of this model and image are already shown."""
        if shown == shown_key(model_choice, example):
            return tuple(gr.skip() for _ in range(N_OUTPUTS))
        return self.run(model_choice, example)

    # ------------------------------------------------------------------ the animation
    @staticmethod
    def scrub(fp: ForwardProcess | None, t: float) -> Any:
        """The forward figure at the slider's t."""
        return forward_figure(fp, t) if fp is not None else gr.skip()

    @staticmethod
    def play(fp: ForwardProcess | None, t: float) -> tuple:
        """Start the timer (from t = 0 again when the slider is at the end)."""
        if fp is None:
            return gr.skip(), gr.Timer(active=False)
        restart = fp.next_frame(t) is None
        return (gr.update(value=0) if restart else gr.skip()), gr.Timer(active=True)

    @staticmethod
    def advance(fp: ForwardProcess | None, t: float) -> tuple:
        """One tick: the next frame's t and figure; the timer stops after the last frame."""
        nxt = fp.next_frame(t) if fp is not None else None
        if nxt is None:
            return gr.skip(), gr.skip(), gr.Timer(active=False)
        return nxt, forward_figure(fp, nxt), gr.Timer(active=True)


def shown_key(model_choice: str, example: Any) -> str:
    """What identifies the figures on the page: the model and the image."""
    return f"{model_choice}|{example}"
