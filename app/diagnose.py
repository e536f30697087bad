"""Handlers of the Diagnose tab: the streamed run, Stop, clearing stale results, redrawing the maps, and
the ``predict`` API.

An upload is decoded once (``uploads.Uploads``): the preview shows that decode and the run uses it.
``Diagnosis.run`` maps the items of ``DiffMICPipeline.run`` to frames: the ``Prepared`` image gives the
first frame (the image, the prior), the ``RecordedState``\\ s give at most one frame every
``STREAM_INTERVAL_S`` (trajectory, counter: drawn from the pipeline's own trajectory, which the app never
records), and the ``DiffMICOutput`` gives the final frame (answer card, maps, details, the CSV and JSON
downloads, the replay slider). What a run does not need is made when asked for: Grad-CAM when the map menu
shows it (``maps.MapData``), the publication PNG when its button is pressed (``figure``), a replay frame
when the replay slider moves or plays (``replay``: views of the pipeline's own trajectory). Every frame is a
tuple in the order of ``OUTPUTS`` (the replay's in that of ``REPLAY_OUTPUTS``); outputs a frame does not
change are ``gr.skip()``. Each request has its own seed, trajectory and output folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from diffmic.imageio import DecodedImage
from diffmic.ood import assessable
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICOutput, Prepared, RecordedState
from diffmic.tasks import TASKS
from diffmic.trajectory import Trajectory

from . import figures, maps, replay, report
from .case_report import CaseReport
from .controls import sampling_options, upload_path
from .diagnose_frames import cleared, error_frame, frame, look_for
from .errors import UserError, on_error, raise_api_error
from .glossary import class_names
from .models import ModelRegistry, Selection
from .publication import trajectory_png
from .replay_handlers import ReplayHandlers
from .run_downloads import FigureRequest, with_assessable, write_downloads
from .runs import RunControl, session_of
from .settings import STREAM_INTERVAL_S
from .uploads import Uploads, decode_upload, preview_pixels, upload_key


class Diagnosis(ReplayHandlers):
    """The Diagnose tab's handlers, bound to a model registry."""

    def __init__(
        self,
        registry: ModelRegistry,
        interval_s: float = STREAM_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.registry = registry
        self.interval_s = interval_s
        self.control = RunControl()
        self.uploads = Uploads()  # each session's upload, decoded once for the preview and the run
        self.clock = clock  # the replay's pace is kept in this time (seconds)

    # ------------------------------------------------------------------ inputs changed, Stop
    def preview(self, file: Any, request: gr.Request | None = None) -> tuple:
        """A new upload: the image for display (or what is wrong with it), and every old result cleared. The
        decode is kept for the run (``uploads.Uploads``). The same image again (a late second change event of
        one drop, or the same file chosen twice) keeps the results of its run."""
        session = session_of(request)
        key = upload_key(file)
        same = bool(key) and self.control.is_shown(session, image=key)
        self.control.shown(session, image=key)
        if not file:
            return (None, *cleared())
        try:
            image = self.uploads.decoded(session, file)
        except UserError as err:  # shown in the error box right under the upload
            gr.Warning(str(err))
            return (None, *error_frame(str(err)))
        return (preview_pixels(image), *(frame() if same else cleared()))

    def model_changed(self, model: str, request: gr.Request | None = None) -> tuple:
        """Another model: the old results no longer apply."""
        self.control.shown(session_of(request), model=model)
        return cleared()

    def arm(self, request: gr.Request | None = None) -> tuple[int, str]:
        """Run was pressed: the stop token of the run about to be queued (see ``runs.RunControl``), and
        the counter says it is starting."""
        return self.token(request), "*Starting…*"

    def token(self, request: gr.Request | None = None) -> int:
        """The stop token alone (the sampler switch re-runs without touching the counter first)."""
        return self.control.token(session_of(request))

    def stop(self, request: gr.Request | None = None) -> None:
        """Ask this session's run to stop; it answers with "Stopped at step N of T"."""
        self.control.stop(session_of(request))

    # ------------------------------------------------------------------ the streamed run
    @on_error(error_frame, "run")
    def run(
        self,
        image: Any,
        model: str,
        sampler: str,
        steps: Any,
        samples: Any,
        seed: Any,
        token: int | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple]:
        """Stream a diagnosis: first frame (image, prior), throttled step frames, final frame."""
        session = session_of(request)
        token = self.control.token(session) if token is None else int(token)
        picture = self.uploads.decoded(session, image)  # the preview's decode
        selection = self.registry.get(model)
        options = sampling_options(sampler, steps, samples, seed, selection.pipe.config.timesteps)
        path, key = upload_path(image) or "", upload_key(image)
        self.control.shown(session, image=key, model=model)  # what the page shows while this run lasts

        def verdict() -> str | None:
            return self.control.verdict(session, token, image=key, model=model)

        yield from self._stream(picture, selection, options, Path(path or "image").stem, verdict)

    def rerun(
        self,
        shown: Any,
        image: Any,
        model: str,
        sampler: str,
        steps: Any,
        samples: Any,
        seed: Any,
        token: int | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple]:
        """The run again after the sampler switch on the figure, if a result is shown; else nothing."""
        if shown is None:
            yield frame()
            return
        yield from self.run(image, model, sampler, steps, samples, seed, token, request)

    def _stream(
        self,
        image: DecodedImage,
        sel: Selection,
        options: SamplingOptions,
        name: str,
        verdict: Callable[[], str | None],
    ) -> Iterator[tuple]:
        names = sel.pipe.config.class_names
        labels = [report.full_name(sel.task, n) for n in names]
        T = sel.pipe.config.timesteps
        shown: RecordedState | None = None  # the latest step handled (its trajectory is the pipeline's)
        prepared: Prepared | None = None
        last_sent = 0.0
        for item in sel.pipe.run(image, options):
            halt = verdict()
            if halt == "stale":
                return
            if halt == "stopped":  # at the step last handled (the pipeline may have recorded one more)
                done = shown.index + 1 if shown else 0
                yield frame(
                    counter=report.stopped_markdown(done, shown.total if shown else T),
                    answer="*Stopped before the end of the chain: no answer.*",
                )
                return
            if isinstance(item, Prepared):
                prepared = item
                start = sel.pipe.trajectory(item, options)  # the chain's start: its prior, no step yet
                yield self._first_frame(sel, item, start, options, labels, T)
                last_sent = time.perf_counter()
            elif isinstance(item, RecordedState):
                shown = item
                if not item.is_last and time.perf_counter() - last_sent >= self.interval_s:
                    yield self._step_frame(item.trajectory, item, labels, T)
                    last_sent = time.perf_counter()
            elif isinstance(item, DiffMICOutput):
                gradcam = partial(sel.pipe.gradcam, prepared, item.label_index)
                yield self._final_frame(sel, image, item, labels, name, maps.map_data(item, gradcam))

    @staticmethod
    def _first_frame(
        sel: Selection,
        prepared: Prepared,
        traj: Trajectory,
        options: SamplingOptions,
        labels: list[str],
        T: int,
    ) -> tuple:
        return cleared(
            counter=report.counter_markdown(0, 0, None),
            answer="*Denoising the label…*",
            trajectory=figures.trajectory_figure(traj, T, labels=labels),
            look_for=look_for(options.sampler, options.samples),
            bars=figures.probability_bars(
                traj.class_names, traj.prior, labels=labels, title="Prior (the start)"
            ),
            glossary=class_names(sel.task),
            original=maps.original(prepared.pixels),
            notice=report.notice_markdown(sel.notice, sel.source),
        )

    @staticmethod
    def _step_frame(traj: Trajectory, state: RecordedState, labels: list[str], T: int) -> tuple:
        """Only the counter and the trajectory: a slow browser must keep up with the stream."""
        return frame(
            counter=report.counter_markdown(traj.steps_done, traj.total, state.t),
            trajectory=figures.trajectory_figure(traj, T, labels=labels),
        )

    def _final_frame(
        self,
        sel: Selection,
        image: DecodedImage,
        output: DiffMICOutput,
        labels: list[str],
        name: str,
        data: maps.MapData,
    ) -> tuple:
        traj = output.trajectory
        T = sel.pipe.config.timesteps
        fits = assessable(output.ood)
        suggestions = [] if fits else self.suggestions(image, sel.task)
        case = CaseReport(output, sel.task, sel.source, sel.pipe.config, tuple(suggestions))
        figure = write_downloads(output, sel.source, name, T, case, labels)
        return frame(
            counter=report.done_markdown(output.steps, output.seconds),
            answer=report.answer_markdown(output, sel.task, fits, suggestions),
            trajectory=figures.trajectory_figure(traj, T, labels=labels),
            bars=_bars(traj, labels, "Final probabilities"),
            heat=maps.heat_image(data, maps.DEFAULT_HEAT, maps.DEFAULT_OPACITY),
            rois=maps.roi_image(output),
            crops=maps.roi_crops(output),
            details=report.details_markdown(output, sel.task, sel.source),
            downloads=[str(p) for p in figure.files],
            json=with_assessable(output.to_json()),
            maps=data,
            figure=figure,
            replay=replay.slider_update(traj.steps_done),
            replay_box=gr.update(visible=True),
        )

    def suggestions(self, image: DecodedImage, task: str) -> list[tuple[str, str]]:
        """(name, title) of the bundled models of other tasks whose distribution check accepts ``image``."""
        accepting = self.registry.models_accepting(image, task)
        return [(m, TASKS[m].title if m in TASKS else "custom model") for m in accepting]

    # ------------------------------------------------------------------ map controls, figure
    @staticmethod
    def redraw_heat(data: maps.MapData | None, which: str, opacity: float) -> Any:
        """The heat map again, with another map or opacity (no new run; Grad-CAM is made on first use)."""
        return maps.heat_image(data, which, opacity) if data is not None else gr.skip()

    @staticmethod
    def figure(request: FigureRequest | None) -> Any:
        """The publication PNG of the run on the page, added to its downloads (nothing before a run)."""
        if request is None:
            gr.Info("Run the model first: the figure shows a run's trajectory.")
            return gr.skip()
        if not request.png.exists():
            trajectory_png(request.trajectory, request.png, request.T, request.title)
        return request.shown()

    @staticmethod
    def case_report(request: FigureRequest | None) -> Any:
        """The one-page PDF report of the run on the page, added to its downloads (nothing before a run)."""
        if request is None or request.case is None or request.pdf is None:
            gr.Info("Run the model first: the report is of a run.")
            return gr.skip()
        if not request.pdf.exists():
            request.case.write(request.pdf)
        return request.shown()

    # ------------------------------------------------------------------ API
    @on_error(raise_api_error, "prediction", toast=False)
    def predict(
        self, image: Any, model: str, sampler: str = "ddpm", steps: Any = 0, samples: Any = 1, seed: Any = 0
    ) -> dict:
        """The ``predict`` endpoint: ``DiffMICOutput.to_json()``, as ``python -m diffmic predict --json``,
        with ``assessable`` (``diffmic.ood.assessable``) beside ``ood``."""
        picture = decode_upload(image)
        selection = self.registry.get(model)
        options = sampling_options(sampler, steps, samples, seed, selection.pipe.config.timesteps)
        if selection.notice:
            gr.Warning(selection.notice.replace("**", "").replace("`", ""))
        return with_assessable(selection.pipe(picture, options).to_json())


def _bars(traj: Trajectory, labels: list[str], title: str) -> Any:
    """The bars at the latest step: mean of the runs (the card's numbers), whiskers their range, the prior."""
    last = np.array([traj.steps_done - 1])
    _, low, high = figures.chain_summary(traj, last)
    return figures.probability_bars(
        traj.class_names, traj.current, traj.prior, low[0], high[0], title, labels
    )
