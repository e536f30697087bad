"""Handlers of the Learn tab: the forward and the reverse process (played both ways and scrubbed, with the
noise schedule), DDPM vs DDIM, and the chain with vs without the prior, for a prior the teacher can change.

The maths is the package's (``diffmic.lesson``): the schedule, the forward process from
``LabelDiffusion.marginal`` and ``q_sample``, the reverse chains from ``DiffMICPipeline.denoise``, the prior
control's prior (``lesson_prior``) and the lesson's first image, the example of the task whose prior (the
model's own) differs most from its true label (``lesson_image``). This module only chooses what to show.
Each handler returns named values (``LEARN_OUTPUTS``, ``PLAY_OUTPUTS``, ``FRAME_OUTPUTS``, ``SCRUB_OUTPUTS``;
the three animated figures come as ``lesson_figures.LessonFigures``, by name), which the tab wires by name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image

from diffmic.class_match import class_index
from diffmic.imageio import DecodedImage
from diffmic.lesson import (
    ReverseChain,
    forward_marginals,
    lesson_image,
    lesson_prior,
    one_hot,
    reverse_chain,
    schedule,
)
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import TASKS

from . import figures, report
from .assets import list_examples
from .errors import UserError, error_markdown, on_error
from .forward_figure import ForwardProcess, frame_timesteps
from .frames import named
from .glossary import info
from .lesson_figures import Lesson
from .models import ModelRegistry
from .settings import DEFAULT_DDIM_STEPS, DEFAULT_SAMPLES, Settings
from .uploads import decode_upload

SAMPLES = DEFAULT_SAMPLES  # runs per chain: Diagnose's default
DRAWS = 24
CHAIN_HEIGHT = 360
GENERATED = "generated"  # the image choice of a model whose task has no examples
OWN_PRIOR = "the image's own prior"

LEARN_OUTPUTS = (
    "image",  # the image menu: set when the lesson chooses its image (first opening, another model)
    "favour",  # the prior control: reset with the image
    "blend",
    "intro",
    "forward",
    "reverse",
    "schedule",
    "t",
    "lesson",
    "ddpm",
    "ddim",
    "with_prior",
    "without_prior",
    "forward_note",
    "sampler_note",
    "prior_note",
    "error",
    "shown",
)
SCRUB_OUTPUTS = ("forward", "reverse", "schedule")  # the slider was dragged
FRAME_OUTPUTS = ("t", "forward", "reverse", "schedule", "timer")  # one tick of Play
PLAY_OUTPUTS = ("direction", *FRAME_OUTPUTS)  # Play forward / Play reverse pressed

FORWARD_TEXT = (
    "**The forward process** destroys the label. At t = 0 the label vector y₀ is the one-hot vector of the "
    f"true class. Every step mixes in a little of the *prior*{info('prior')} (the guidance network's guess) "
    "and a little Gaussian noise: q(y_t | y₀, prior) = N(√ᾱ_t·y₀ + (1−√ᾱ_t)·prior, (1−ᾱ_t)·I), where "
    f"ᾱ_t{info('ᾱ_t')} falls from nearly 1 to nearly 0. By t = T nothing of the truth is left: "
    f"y_T ~ N(prior, I). **The reverse process** is what the model does: its runs{info('run')} start at "
    "y_T, scattered around the prior, and the denoiser, which sees the image and the prior, takes the "
    "noise out step by step. Both figures show the same t: press **Play forward** (t = 0 → T), "
    "**Play reverse** (t = T → 0), or drag the slider."
)
SCHEDULE_TEXT = (
    "**The noise schedule** sets how fast this happens: β_t is the noise added at step t (it grows "
    f"linearly), ᾱ_t{info('ᾱ_t')} the part of the true label still there, and 1 − √ᾱ_t the prior's weight in "
    "the mean of y_t. The dotted line is the t of the figures above."
)
SAMPLER_TEXT = (
    "**DDPM vs DDIM.** Both start at y_T ~ N(prior, I): centred on the prior (the diamonds at t = T), but "
    "with noise as large as the label itself, so at first each run's probabilities point at an almost "
    "random class; the shaded band spans 0 to 1 and the mean of the runs is not the prior. "
    f"DDPM{info('DDPM')} takes all T small steps and adds fresh noise at each, so every run wanders before "
    f"it settles; DDIM{info('DDIM')} (η{info('η')} = 0) "
    "follows a deterministic path in far fewer steps, keeping each run's starting noise until ᾱ_t grows "
    "(late, near t = 0), then moving straight to the answer. Both usually end at the same answer; DDIM "
    "gets there much faster."
)
PRIOR_TEXT = (
    f"**With vs without the prior.** In DiffMIC the chain is centred on the prior{info('fused prior')}: the "
    "runs start around "
    "it and the denoiser, which was trained with the prior as an input, pulls them to the answer. With a "
    "zero mean instead (plain label diffusion) the chain starts around zero and the denoiser has to do "
    "all the work, so the answer is often less sure or different. Change the prior above and watch the "
    "chains follow it."
)


class LessonImage(NamedTuple):
    """The lesson's image (decoded once) and its true label (None when unknown)."""

    image: DecodedImage | Image.Image
    true_label: str | None


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


def chain_caption(what: str, chain: ReverseChain, names: list[str], task: str | None) -> str:
    """One line under a chain figure: steps, time and answer."""
    k = chain.answer
    return (
        f"**{what}**: {chain.steps} steps in {chain.seconds:.2f} s → "
        f"**{report.full_name(task, names[k])}** (probability {report.percent(chain.probabilities[k])})"
    )


def top_classes(probs: np.ndarray, names: list[str], n: int = 2) -> str:
    """``Severe 53 %, Proliferative DR 47 %``: the ``n`` most likely classes (those above 0.5 %)."""
    order = [k for k in np.argsort(-probs)[:n] if probs[k] >= 0.005] or [int(np.argmax(probs))]
    return ", ".join(f"{names[k]} {report.percent(probs[k])}" for k in order)


def prior_words(favour: str | None, blend: float) -> str:
    """What the lesson's prior is, in words."""
    base = "this image's own prior" if favour is None else f"a prior all on {favour}"
    return base if blend <= 0 else f"{base}, blended {blend:.0%} towards uniform"


def intro_markdown(
    names: list[str], own: np.ndarray, truth: int | None, task: str | None, modality: str
) -> str:
    """What the lesson's image shows: its true label against the model's own prior for it."""
    if truth is None:
        return (
            f"**This lesson's image:** a {modality} image whose true label is unknown, so y₀ is the prior's "
            f"top class. The model's prior{info('fused prior')} for it: {top_classes(own, names)}."
        )
    top = int(np.argmax(own))
    truth_name = report.full_name(task, names[truth])
    if top != truth:
        return (
            f"**This lesson's image** is a *{truth_name}* {modality} image, but the model's own "
            f"prior{info('fused prior')} for it favours **{names[top]}** ({top_classes(own, names)}). "
            "Watch the forward process carry the true label towards that prior, and the reverse chain start "
            "from the prior and find its way to an answer."
        )
    return (
        f"**This lesson's image** is a *{truth_name}* {modality} image, and the model's own "
        f"prior{info('fused prior')} already favours its true class ({top_classes(own, names)}): none of "
        "this model's example images has a prior that favours another class. Centre the chain on another "
        "class below and watch it follow."
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


def schedule_note(lesson: Lesson) -> str:
    """Where this model's schedule crosses the lines a student looks for."""
    sched = lesson.schedule
    half = int(np.argmax(sched.prior_weight >= 0.5)) if (sched.prior_weight >= 0.5).any() else None
    gone = int(np.argmax(sched.alpha_bar < 0.01)) if (sched.alpha_bar < 0.01).any() else None
    parts = []
    if half is not None:
        parts.append(f"the prior outweighs the true label in the mean of y_t from t = {half}")
    if gone is not None:
        parts.append(f"less than 1 % of the true label (ᾱ_t < 0.01) is left from t = {gone}")
    return f"For this model (T = {sched.T}): " + " and ".join(parts) + "." if parts else ""


def error_outputs(message: str) -> tuple:
    """The error shown, every Learn figure cleared (they no longer match the choices)."""
    blank = figures.empty_figure("Choose a model and an image", CHAIN_HEIGHT)
    big = figures.empty_figure("Choose a model and an image", 420)
    return named(
        LEARN_OUTPUTS,
        intro="",
        forward=big,
        reverse=big,
        schedule=figures.empty_figure("", 300),
        t=gr.update(value=0),
        lesson=None,
        ddpm=blank,
        ddim=blank,
        with_prior=blank,
        without_prior=blank,
        forward_note="",
        sampler_note="",
        prior_note="",
        error=gr.update(value=error_markdown(message), visible=True),
        shown=None,
    )


class Lessons:
    """The Learn tab's handlers, bound to a model registry and the examples."""

    def __init__(self, registry: ModelRegistry, settings: Settings):
        self.registry = registry
        self.settings = settings
        self._lesson_images: dict[str, str] = {}  # model choice → the image its lesson starts on

    # ------------------------------------------------------------------ which images, which prior
    def image_choices(self, task: str | None) -> list[tuple[str, str]]:
        """(caption, path) of the examples of ``task``; a generated image when it has none."""
        examples = [e for e in list_examples(self.settings.assets_dir) if e.task == task]
        if examples:
            return [(f"{e.label} (true label){'' if e.path.suffix != '.dcm' else ', DICOM'}", str(e.path))
                    for e in examples]  # fmt: skip
        return [(f"a generated {task} image" if task else "a plain grey image", GENERATED)]

    def images_for(self, model_choice: str, value: str | None = None) -> dict:
        """The image menu for a model: its task's examples only, ``value`` (default the first) chosen."""
        choices = self.image_choices(self.registry.task_of(model_choice))
        paths = [path for _, path in choices]
        return gr.update(choices=choices, value=value if value in paths else paths[0])

    @staticmethod
    def prior_choices(class_names: list[str]) -> list[str]:
        """The prior control's options: the image's own prior, or all of it on one class."""
        return [OWN_PRIOR, *class_names]

    def lesson_image_of(self, model_choice: str, pipe: DiffMICPipeline) -> str:
        """The image a model's lesson starts on: the example of its task whose prior, the model's own, differs
        most from its true label (``diffmic.lesson.lesson_image``); chosen once per model."""
        if model_choice not in self._lesson_images:
            task, names = pipe.config.task, list(pipe.config.class_names)
            examples = [e for e in list_examples(self.settings.assets_dir) if e.task == task]
            if not examples:
                chosen = GENERATED
            else:
                labels = [class_index(e.label, names) for e in examples]
                choice = lesson_image(pipe, [str(e.path) for e in examples], labels)
                chosen = str(examples[choice.index if choice else 0].path)
            self._lesson_images[model_choice] = chosen
        return self._lesson_images[model_choice]

    def _image(self, example: Any, pipe: DiffMICPipeline) -> LessonImage:
        """The chosen example (or a generated one) and its true label; refuses another task's image."""
        task = pipe.config.task
        allowed = {path: caption for caption, path in self.image_choices(task)}
        if str(example or "") not in allowed:
            raise UserError(f"pick one of the {task or 'model'}'s own example images")
        if example != GENERATED:
            label = next(e.label for e in list_examples(self.settings.assets_dir) if str(e.path) == example)
            return LessonImage(decode_upload(example), label)
        from diffmic.data.synthetic import GENERATORS, generate_sample

        size = pipe.config.input_size
        if task not in GENERATORS:
            return LessonImage(Image.new("RGB", (size, size), (120, 110, 100)), None)
        sample = generate_sample(task, 0, 0, size)
        return LessonImage(Image.fromarray(sample.image), GENERATORS[task].class_names[sample.label])

    # ------------------------------------------------------------------ the lessons
    @on_error(error_outputs, "lesson")
    def run(
        self, model_choice: str, example: Any = None, favour: str | None = OWN_PRIOR, blend: float = 0.0
    ) -> tuple:
        """All Learn figures and captions for a model, an image and a prior (``favour``: a class name, or
        the image's own prior; ``blend``: how far towards uniform). Without an image, the lesson chooses
        its own (``lesson_image_of``) and resets the prior control."""
        selection = self.registry.get(model_choice)
        pipe, task = selection.pipe, selection.task
        choose = example is None
        if choose:
            example, favour, blend = self.lesson_image_of(model_choice, pipe), OWN_PRIOR, 0.0
        image, true_label = self._image(example, pipe)
        names = list(pipe.config.class_names)
        labels = [report.full_name(task, n) for n in names]
        prepared = pipe.prepare(image)
        own = prepared.conditioning.prior("fused")[0].cpu().numpy()
        k_favour = names.index(favour) if favour in names else None
        blend = float(min(max(float(blend or 0.0), 0.0), 1.0))
        custom = k_favour is not None or blend > 0
        prior = lesson_prior(own, k_favour, blend) if custom else own
        truth = class_index(true_label, names) if true_label else None
        y0_class = truth if truth is not None else int(own.argmax())
        fp = forward_process(pipe, one_hot(y0_class, len(names)), prior, labels)
        base = SamplingOptions(sampler="ddpm", samples=SAMPLES, seed=0)
        centre = prior if custom else None  # None: the pipeline's own prior, exactly as Diagnose runs it
        ddpm = reverse_chain(pipe, prepared, base, centre)
        ddim = reverse_chain(
            pipe, prepared, base.with_(sampler="ddim", steps=min(DEFAULT_DDIM_STEPS, fp.T)), centre
        )
        none = reverse_chain(pipe, prepared, base.with_(prior="none"))
        lesson = Lesson(fp, ddpm, schedule(pipe.model.diffusion), truth)
        described = prior_words(None if k_favour is None else names[k_favour], blend)
        forward_note = (
            f"y₀ = one-hot of **{labels[y0_class]}**, "
            + (
                "this image's true label"
                if truth is not None
                else "the prior's top class (the true label is unknown)"
            )
            + f"; the chain is centred on {described}: {top_classes(prior, names, 3)}. "
            + schedule_note(lesson)
            + (f"\n\n**Note:** {selection.notice}" if selection.notice else "")
        )
        chains = self._chains(pipe.config.timesteps, (ddpm, ddim, none), names, labels, task)
        chains["prior_note"] += measured_note(self.registry.evaluation_of(model_choice))
        modality = TASKS[task].modality if task in TASKS else "medical"
        return named(
            LEARN_OUTPUTS,
            image=self.images_for(model_choice, example) if choose else gr.skip(),
            favour=gr.update(choices=self.prior_choices(names), value=OWN_PRIOR) if choose else gr.skip(),
            blend=gr.update(value=0.0) if choose else gr.skip(),
            intro=intro_markdown(names, own, truth, task, modality),
            **lesson.figures(0)._asdict(),
            t=gr.update(value=0, maximum=fp.T - 1),
            lesson=lesson,
            **chains,
            forward_note=forward_note,
            error=gr.update(value="", visible=False),
            shown=shown_key(model_choice, example, favour, blend),
        )

    @staticmethod
    def _chains(T: int, chains: tuple, names: list[str], labels: list[str], task: str | None) -> dict:
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

    def for_model(self, model_choice: str) -> tuple:
        """Another model: its lesson on the image it chooses, with the image's own prior."""
        return self.run(model_choice)

    def on_open(self, shown: Any, model_choice: str, example: Any, favour: str | None, blend: float) -> tuple:
        """The tab was opened: the first time, the lesson chooses its image; later, the figures are shown
        again only if they are not those of this model, image and prior."""
        if shown is None:
            return self.run(model_choice)
        if shown == shown_key(model_choice, example, favour, blend):
            return named(LEARN_OUTPUTS)
        return self.run(model_choice, example, favour, blend)

    # ------------------------------------------------------------------ the animation
    @staticmethod
    def scrub(lesson: Lesson | None, t: float) -> tuple:
        """The three figures at the slider's t."""
        if lesson is None:
            return named(SCRUB_OUTPUTS)
        return named(SCRUB_OUTPUTS, **lesson.figures(t)._asdict())

    @staticmethod
    def play_forward(lesson: Lesson | None, t: float) -> tuple:
        """Play the forward process (t rising; from t = 0 again when at the end)."""
        return Lessons._play(lesson, t, "forward")

    @staticmethod
    def play_reverse(lesson: Lesson | None, t: float) -> tuple:
        """Play the reverse process (t falling; from t = T again when at t = 0)."""
        return Lessons._play(lesson, t, "reverse")

    @staticmethod
    def _play(lesson: Lesson | None, t: float, direction: str) -> tuple:
        if lesson is None:
            return named(PLAY_OUTPUTS, timer=gr.Timer(active=False))
        fp = lesson.forward
        at_end = (fp.next_frame(t) if direction == "forward" else fp.previous_frame(t)) is None
        if not at_end:
            return named(PLAY_OUTPUTS, direction=direction, timer=gr.Timer(active=True))
        start = 0 if direction == "forward" else fp.T - 1
        return named(
            PLAY_OUTPUTS,
            direction=direction,
            t=start,
            **lesson.figures(start)._asdict(),
            timer=gr.Timer(active=True),
        )

    @staticmethod
    def advance(lesson: Lesson | None, t: float, direction: str = "forward") -> tuple:
        """One tick: the next frame's t and figures in the playing direction; the timer stops at the end."""
        if lesson is None:
            return named(FRAME_OUTPUTS, timer=gr.Timer(active=False))
        fp = lesson.forward
        step = fp.next_frame if direction == "forward" else fp.previous_frame
        nxt = step(t)
        if nxt is None:
            return named(FRAME_OUTPUTS, timer=gr.Timer(active=False))
        return named(
            FRAME_OUTPUTS,
            t=nxt,
            **lesson.figures(nxt)._asdict(),
            timer=gr.Timer(active=step(nxt) is not None),
        )


def shown_key(model_choice: str, example: Any, favour: str | None = OWN_PRIOR, blend: float = 0.0) -> str:
    """What identifies the figures on the page: the model, the image and the prior."""
    return f"{model_choice}|{example}|{favour or OWN_PRIOR}|{float(blend or 0.0):.2f}"
