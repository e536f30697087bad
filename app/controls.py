"""What the controls hold, turned into what the package takes: the uploaded image, and one SamplingOptions
for the (sampler, steps, samples, seed) group. A value the package refuses becomes a ``UserError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from diffmic.dicom import read_dicom_info
from diffmic.imageio import ImageLoadError, load_image
from diffmic.options import SamplingOptions

from .errors import UserError
from .settings import MAX_SAMPLES


def upload_path(file: Any) -> str | None:
    """The path of an upload: gr.File gives a path; an API payload may be a dict holding one."""
    if isinstance(file, dict):
        file = file.get("path")
    return str(file) if file else None


def read_upload(file: Any) -> Image.Image:
    """The uploaded file as an RGB image, or a UserError saying what is wrong with it."""
    path = upload_path(file)
    if not path:
        raise UserError("upload an image (PNG, JPEG or DICOM) or pick an example first")
    try:
        return load_image(path)
    except ImageLoadError as err:
        raise UserError(f"{Path(path).name}: {err}") from err


def scan_details(file: Any) -> str:
    """The line under the preview for a DICOM upload: modality, body part, pixel spacing, the window it is
    shown with (``DicomInfo.describe``); empty for other files or when the preview says what is wrong."""
    path = upload_path(file)
    try:
        info = read_dicom_info(path) if path else None
    except ImageLoadError:
        return ""
    return "" if info is None else f"DICOM: {info.describe()}"


def _whole(value: Any, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise UserError("steps, samples and seed must be whole numbers") from err
    if number != int(number):
        raise UserError("steps, samples and seed must be whole numbers")
    return int(number)


def sampling_options(
    sampler: Any,
    steps: Any,
    samples: Any,
    seed: Any,
    timesteps: int,
    max_samples: int = MAX_SAMPLES,
) -> SamplingOptions:
    """The controls as one SamplingOptions; steps of 0 or empty mean all T (as the CLI).

    The package validates the values; the app adds its own limits (T of the model, samples a CPU can
    afford) and turns every refusal into a sentence for the page.
    """
    n_steps = _whole(steps, None)
    n_samples = _whole(samples, 1)
    n_seed = _whole(seed, 0)
    if n_steps is not None and n_steps <= 0:
        n_steps = None
    if n_steps is not None and n_steps > timesteps:
        raise UserError(
            f"this model has T = {timesteps} timesteps, so at most {timesteps} steps (got {n_steps})"
        )
    if n_samples is not None and not 1 <= n_samples <= max_samples:
        raise UserError(f"samples must be between 1 and {max_samples} here (got {n_samples})")
    try:
        return SamplingOptions(str(sampler or "ddpm"), n_steps, int(n_samples or 1), int(n_seed or 0))
    except ValueError as err:
        raise UserError(str(err)) from err
