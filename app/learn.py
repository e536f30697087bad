"""Handlers of the Learn tab: the forward and the reverse process (played both ways and scrubbed, with the
noise schedule), DDPM vs DDIM, and the chain with vs without the prior, for a prior the teacher can change.

The maths is the package's (``diffmic.lesson``): the schedule, the forward process from
``LabelDiffusion.marginal`` and ``q_sample``, the reverse chains from ``DiffMICPipeline.denoise``, the prior
control's prior (``lesson_prior``) and the lesson's first image, the example of the task whose prior (the
model's own) differs most from its true label (``lesson_image``). This module only chooses what to show;
the figures' processes are drawn by ``lesson_processes``, the words written by ``lesson_words``.
Each handler returns named values (``LEARN_OUTPUTS``, ``PLAY_OUTPUTS``, ``FRAME_OUTPUTS``, ``SCRUB_OUTPUTS``;
the three animated figures come as ``lesson_figures.LessonFigures``, by name), which the tab wires by name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr
from PIL import Image

from diffmic.class_match import class_index
from diffmic.imageio import DecodedImage
from diffmic.lesson import lesson_image, lesson_prior, one_hot, reverse_chain, schedule
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import TASKS

from . import figures, report
from .assets import list_examples
from .errors import UserError, error_markdown, on_error
from .frames import named
from .lesson_figures import Lesson
from .lesson_processes import CHAIN_HEIGHT, SAMPLES, chain_figures, forward_process
from .lesson_words import intro_markdown, measured_note, prior_words, schedule_note, top_classes
from .models import ModelRegistry
from .settings import DEFAULT_DDIM_STEPS, Settings
from .uploads import decode_upload

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


class LessonImage(NamedTuple):
    """The lesson's image (decoded once) and its true label (None when unknown)."""

    image: DecodedImage | Image.Image
    true_label: str | None


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
        chains = chain_figures(pipe.config.timesteps, (ddpm, ddim, none), names, labels, task)
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
