"""A decoded DICOM frame as the file says to show it (PS3.3 C.11): the Modality LUT, then the first VOI LUT
or the first Window Center/Width pair (LINEAR, LINEAR_EXACT, SIGMOID), MONOCHROME1 inverted; min–max
without either; colour kept, a palette expanded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dicom_frame import _pydicom_pixels
from .dicom_parse import MAX_LUT_BYTES
from .dicom_values import _first, _numbers, _value, _whole
from .imageio import ImageLoadError
from .rgb_conversion import _to_uint8

_WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class _Window:
    center: float
    width: float
    function: str  # LINEAR, LINEAR_EXACT or SIGMOID


def _display(ds) -> tuple[str, _Window | None]:
    """How the file says to show it: ("colour" | "palette" | "VOI LUT" | "window" | "min–max", window)."""
    photometric = _photometric(ds)
    if (_whole(ds, "SamplesPerPixel") or 1) == 3 or photometric.startswith(("RGB", "YBR")):
        return "colour", None
    if photometric == "PALETTE COLOR":
        return "palette", None
    if _voi_lut(ds) is not None:
        return "VOI LUT", None
    window = _window(ds)
    return ("min–max", None) if window is None else ("window", window)


def _photometric(ds) -> str:
    value = _value(ds, "PhotometricInterpretation", 64)
    return value.strip().upper() if isinstance(value, str) else "MONOCHROME2"


def _window(ds) -> _Window | None:
    """The first Window Center/Width pair, if usable (finite; width ≥ 1 for LINEAR, > 0 otherwise)."""
    center, width = _first(_value(ds, "WindowCenter")), _first(_value(ds, "WindowWidth"))
    if center is None or width is None:
        return None
    function = _value(ds, "VOILUTFunction", 64)
    function = function.strip().upper() if isinstance(function, str) else "LINEAR"
    function = function if function in _WINDOW_FUNCTIONS else "LINEAR"
    if width < 1 if function == "LINEAR" else width <= 0:
        return None
    return _Window(center, width, function)


def _voi_lut(ds) -> tuple[np.ndarray, int] | None:
    """The first VOI LUT as (table scaled to [0, 1], first value mapped), or None if absent or unusable.

    Read here rather than with pydicom's ``apply_voi``, which (3.0) wraps indices above 255 for LUTs with
    8-bit entries."""
    sequence = _value(ds, "VOILUTSequence", MAX_LUT_BYTES)
    try:
        item = sequence[0]
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
        data = item.LUTData
    except Exception:  # absent, empty or malformed
        return None
    entries = entries or 65536
    if isinstance(data, (bytes, bytearray)):  # OW: 16-bit words in the file's byte order
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
        table = np.frombuffer(data[: len(data) // 2 * 2], "<u2" if little else ">u2")
        if table.size < entries and bits == 8 and len(data) >= entries:  # 8-bit entries packed in bytes
            table = np.frombuffer(data, np.uint8)
    else:
        try:
            table = np.asarray(_numbers(data), np.float64)
        except (TypeError, ValueError):
            return None
    if table.size < entries:
        return None
    table = table[:entries].astype(np.float64)
    low, high = float(table.min()), float(table.max())
    if not high > low:
        return None
    return ((table - low) / (high - low)).astype(np.float32), first


def _to_display(pixels: np.ndarray, ds) -> np.ndarray:
    """Decoded pixels to uint8 grey (H×W) or RGB (H×W×3)."""
    display, window = _display(ds)
    if pixels.ndim == 3:  # RGB, or YBR already converted to RGB
        if pixels.shape[2] != 3:
            raise ImageLoadError("the DICOM frame does not have 1 or 3 samples per pixel")
        return _to_uint8(pixels)
    if display == "palette":
        return _to_uint8(_pydicom_pixels()["apply_color_lut"](pixels, ds))
    values = _rescaled(pixels, ds)  # float32, a new array, changed in place below
    if not np.isfinite(values).all():
        raise ImageLoadError("the image contains NaN or infinite values")
    lut = _voi_lut(ds) if display == "VOI LUT" else None
    if lut is not None:
        table, first = lut
        np.rint(values, out=values)
        values -= first
        np.clip(values, 0, table.size - 1, out=values)
        values = table[values.astype(np.intp)]
    elif window is not None:
        _apply_window(values, window)
    else:
        _stretch(values)
    if _photometric(ds) == "MONOCHROME1":
        np.subtract(1, values, out=values)
    values *= 255
    np.rint(values, out=values)
    return values.astype(np.uint8)


def _rescaled(pixels: np.ndarray, ds) -> np.ndarray:
    """The Modality LUT: its sequence (pydicom), or RescaleSlope/Intercept; float32, a new array."""
    if "ModalityLUTSequence" in ds:
        return np.asarray(_pydicom_pixels()["apply_modality_lut"](pixels, ds), np.float32).copy()
    values = pixels.astype(np.float32)
    slope, intercept = _first(_value(ds, "RescaleSlope")), _first(_value(ds, "RescaleIntercept"))
    if slope is not None and intercept is not None and slope != 0:
        values *= slope
        values += intercept
    return values


def _apply_window(values: np.ndarray, window: _Window) -> None:
    """Map values to [0, 1] in place with PS3.3 C.11.2.1.2's window functions."""
    center, width = window.center, window.width
    if window.function == "SIGMOID":
        values -= center
        values *= -4 / width
        np.clip(values, -80, 80, out=values)
        np.exp(values, out=values)
        values += 1
        np.reciprocal(values, out=values)
        return
    if window.function == "LINEAR_EXACT":
        low, span = center - width / 2, width
    elif width == 1:  # LINEAR of width 1: a threshold at center - 0.5
        np.greater(values, center - 0.5, out=values)
        return
    else:
        low, span = center - 0.5 - (width - 1) / 2, width - 1
    values -= low
    values /= span
    np.clip(values, 0, 1, out=values)


def _stretch(values: np.ndarray) -> None:
    """Min–max of the values to [0, 1] in place (a constant image becomes 0)."""
    low, high = float(values.min()), float(values.max())
    values -= low
    if high > low:
        values /= high - low
