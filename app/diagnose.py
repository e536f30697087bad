"""Handlers of the Diagnose tab: the streamed run, the image preview, and the ``predict`` API.

``Diagnosis.run`` is a generator. It yields a first frame as soon as the once-per-image passes are done
(the DCG maps and the prior), then at most one frame every ``STREAM_INTERVAL_S`` while the chain runs
(only the trajectory, the bars and the counter change), then the final frame (label, summary,
Grad-CAM, downloads). Every frame is a tuple in the order of ``OUTPUTS``; outputs a frame does not
change are ``gr.skip()``. Each request has its own seed, trajectory and output folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from diffmic.explain import draw_rois, overlay, roi_patches
from diffmic.hub import ModelLoadError
from diffmic.imageio import ImageLoadError, load_image
from diffmic.model import DiffMIC, Prediction, Prepared

from . import figures, report
from .models import ModelRegistry, Selection
from .outputs import new_run_folder, slug
from .publication import trajectory_png
from .settings import MAX_SAMPLES, STREAM_INTERVAL_S
from .trajectory import Trajectory

log = logging.getLogger(__name__)

OUTPUTS = (
    "counter",
    "trajectory",
    "bars",
    "saliency",
    "rois",
    "crops",
    "gradcam",
    "label",
    "summary",
    "downloads",
    "json",
    "error",
    "notice",
)
PREVIEW_SIDE = 512
DISPLAY_SIDE = 384


class UserError(ValueError):
    """A problem with the request that the page shows as is."""


@dataclass(frozen=True)
class RunParams:
    """Validated sampling settings of one request."""

    sampler: str  # "ddpm" | "ddim"
    steps: int | None  # None = all T steps
    samples: int
    seed: int


def check_params(model: DiffMIC, sampler: Any, steps: Any, samples: Any, seed: Any) -> RunParams:
    """Validate the controls against the model; ``steps`` of 0/None means all T (as the CLI)."""
    name = str(sampler or "ddpm").strip().lower()
    if name not in ("ddpm", "ddim"):
        raise UserError(f"unknown sampler {sampler!r}; use DDPM or DDIM")
    T = model.config.timesteps
    try:
        n_steps = None if steps in (None, "") or int(steps) <= 0 else int(steps)
        n_samples = int(samples) if samples not in (None, "") else 1
        n_seed = int(seed) if seed not in (None, "") else 0
    except (TypeError, ValueError) as err:
        raise UserError("steps, samples and seed must be whole numbers") from err
    if n_steps is not None and n_steps > T:
        raise UserError(f"this model has T = {T} timesteps, so at most {T} steps (got {n_steps})")
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise UserError(f"samples must be between 1 and {MAX_SAMPLES} (got {n_samples})")
    if not 0 <= n_seed < 2**63:
        raise UserError("the seed must be a non-negative whole number")
    return RunParams(name, n_steps, n_samples, n_seed)


def upload_path(file: Any) -> str | None:
    """The path of an upload: gr.File gives a path; an API payload may be a dict holding one."""
    if isinstance(file, dict):
        file = file.get("path")
    return str(file) if file else None


def read_upload(file: Any) -> Image.Image:
    """The uploaded file as an RGB image, or a UserError saying what is wrong with it."""
    file = upload_path(file)
    if not file:
        raise UserError("upload an image (PNG, JPEG or DICOM) or pick an example first")
    try:
        return load_image(str(file))
    except ImageLoadError as err:
        raise UserError(f"{Path(str(file)).name}: {err}") from err


def upscale(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """Resize a small map for display, so all the maps show at the same size."""
    if image.shape[0] == side:
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))


def frame(**values: Any) -> tuple:
    """A tuple in ``OUTPUTS`` order; outputs not given are left unchanged."""
    unknown = set(values) - set(OUTPUTS)
    if unknown:
        raise KeyError(f"unknown outputs {sorted(unknown)}")
    return tuple(values.get(name, gr.skip()) for name in OUTPUTS)


def error_frame(message: str) -> tuple:
    """Show the message in the error box (and a toast), leave the rest of the page as it was."""
    gr.Warning(message)
    return frame(
        error=gr.update(value=report.error_markdown(message), visible=True),
        counter="",
    )


class Diagnosis:
    """The Diagnose tab's handlers, bound to a model registry."""

    def __init__(self, registry: ModelRegistry, interval_s: float = STREAM_INTERVAL_S):
        self.registry = registry
        self.interval_s = interval_s

    # ------------------------------------------------------------------ preview
    def preview(self, file: Any) -> tuple:
        """The uploaded image for display, or a clear message when it cannot be read."""
        if not file:
            return None, gr.update(value="", visible=False)
        try:
            image = read_upload(file)
        except UserError as err:
            gr.Warning(str(err))
            return None, gr.update(value=report.error_markdown(str(err)), visible=True)
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        return np.asarray(image), gr.update(value="", visible=False)

    # ------------------------------------------------------------------ the streamed run
    def run(self, image: Any, model: str, sampler: str, steps: Any, samples: Any, seed: Any) -> Iterator:
        """Stream a diagnosis: first frame (maps, prior), throttled trajectory frames, final frame."""
        start = time.perf_counter()
        try:
            picture = read_upload(image)
            selection = self.registry.get(model)
            params = check_params(selection.model, sampler, steps, samples, seed)
        except (UserError, ModelLoadError) as err:
            yield error_frame(str(err))
            return
        try:
            name = Path(upload_path(image) or "image").stem
            yield from self._stream(picture, selection, params, start, name)
        except Exception as err:  # never let a bug crash the page: say what happened
            log.exception("diagnosis failed")
            yield error_frame(f"the run failed ({type(err).__name__}: {err})")

    def _stream(
        self, image: Image.Image, sel: Selection, params: RunParams, start: float, name: str
    ) -> Iterator:
        model = sel.model
        prepared = model.prepare(image)
        g = prepared.guidance
        names = model.config.class_names
        t_max = model.config.timesteps - 1
        traj = Trajectory(names, params.samples, g.fused_prior[0].cpu().numpy())
        yield frame(
            counter=report.counter_markdown(0, 0, None, time.perf_counter() - start),
            trajectory=figures.trajectory_figure(traj, t_max),
            bars=figures.probability_bars(names, traj.prior, title="Fused prior (start of the chain)"),
            **self._maps(prepared),
            gradcam=None,
            label=None,
            summary="*Denoising the label…*",
            downloads=None,
            json=None,
            error=gr.update(value="", visible=False),
            notice=report.notice_markdown(sel.notice, sel.loaded.source),
        )
        last_sent = time.perf_counter()
        state = None
        for state in model.stream(
            prepared, sampler=params.sampler, steps=params.steps, samples=params.samples, seed=params.seed
        ):
            traj.record(state)
            if not state.is_last and time.perf_counter() - last_sent >= self.interval_s:
                yield self._progress_frame(traj, t_max, state.t, start)
                last_sent = time.perf_counter()
        pred = model.summarise(g, state, params.sampler, params.seed, time.perf_counter() - start)
        yield self._final_frame(sel, prepared, image, traj, pred, t_max, start, name)

    @staticmethod
    def _maps(prepared: Prepared) -> dict[str, Any]:
        g = prepared.guidance
        boxes, attention = g.boxes[0].cpu().numpy(), g.attention[0].cpu().numpy()
        crops = roi_patches(prepared.pixels, boxes, attention)
        order = np.argsort(-attention)  # roi_patches' order: most attended first
        return dict(
            saliency=upscale(overlay(prepared.pixels, g.class_saliency()[0].cpu().numpy())),
            rois=upscale(draw_rois(prepared.pixels, boxes, attention)),
            crops=[(c, f"#{k + 1}: {attention[k]:.2f}") for (c, _), k in zip(crops, order, strict=True)],
        )

    @staticmethod
    def _progress_frame(traj: Trajectory, t_max: int, t: int, start: float) -> tuple:
        return frame(
            counter=report.counter_markdown(traj.steps_done, traj.total, t, time.perf_counter() - start),
            trajectory=figures.trajectory_figure(traj, t_max),
            bars=figures.probability_bars(
                traj.class_names, traj.current, traj.prior, traj.low[-1], traj.high[-1], title=f"At t = {t}"
            ),
        )

    def _final_frame(
        self,
        sel: Selection,
        prepared: Prepared,
        image: Image.Image,
        traj: Trajectory,
        pred: Prediction,
        t_max: int,
        start: float,
        name: str,
    ) -> tuple:
        heat = sel.loaded.grad_cam(np.asarray(image), pred.label_index, network="global")
        files = write_downloads(traj, pred, sel.loaded.source, t_max, name)
        elapsed = time.perf_counter() - start
        return frame(
            counter=report.counter_markdown(traj.steps_done, traj.total, 0, elapsed, finished=True),
            trajectory=figures.trajectory_figure(traj, t_max),
            bars=figures.probability_bars(
                traj.class_names,
                traj.current,
                traj.prior,
                traj.low[-1],
                traj.high[-1],
                title="Final probabilities",
            ),
            gradcam=upscale(overlay(prepared.pixels, heat)),
            label=pred.probabilities,
            summary=report.summary_markdown(pred, sel.loaded.source),
            downloads=[str(p) for p in files],
            json=pred.to_json(),
        )

    # ------------------------------------------------------------------ API
    def predict(
        self, image: Any, model: str, sampler: str = "ddpm", steps: Any = 0, samples: Any = 1, seed: Any = 0
    ) -> dict:
        """The ``predict`` endpoint: the same JSON as ``python -m diffmic predict --json``."""
        try:
            picture = read_upload(image)
            selection = self.registry.get(model)
            params = check_params(selection.model, sampler, steps, samples, seed)
        except (UserError, ModelLoadError) as err:
            raise gr.Error(str(err)) from err
        if selection.notice:
            gr.Warning(selection.notice.replace("**", "").replace("`", ""))
        result = selection.model.predict(
            picture, sampler=params.sampler, steps=params.steps, samples=params.samples, seed=params.seed
        )
        return result.to_json()


def write_downloads(traj: Trajectory, pred: Prediction, source: str, t_max: int, name: str) -> list[Path]:
    """Write the trajectory as CSV, JSON and a PNG figure into a new folder; returns the three paths."""
    folder = new_run_folder("diagnose")
    stem = f"diffmic-{slug(name)}-{pred.sampler}-{pred.steps}steps-seed{pred.seed}"
    csv_path = folder / f"{stem}.csv"
    csv_path.write_text(traj.to_csv())
    json_path = folder / f"{stem}.json"
    json_path.write_text(traj.to_json({"model": source, "prediction": pred.to_json()}))
    title = (
        f"DiffMIC ({source}): {pred.sampler.upper()}, {pred.steps} steps, "
        f"{pred.samples} samples → {pred.label}"
    )
    png_path = trajectory_png(traj, folder / f"{stem}.png", t_max, title)
    return [csv_path, json_path, png_path]
