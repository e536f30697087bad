"""Pixels to 8-bit RGB for :mod:`diffmic.imageio`: any PIL mode (high-bit grey by min–max, transparency onto
white) and H×W[×C] arrays (uint8 as is, uint16 and floats scaled), NaN and infinity refused."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .imageio import ImageLoadError, _check_pixels

_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")
ARRAY_SHAPE = "expected an array of shape H×W, H×W×1, H×W×3 or H×W×4"
ARRAY_DTYPE = "expected an array of dtype uint8, uint16 or float"


def _mode_to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: high-bit gray by min–max, transparency onto white."""
    if image.mode in _HIGH_BIT_MODES:
        gray = _to_uint8(np.asarray(image), unit_floats=False)
        return Image.fromarray(gray).convert("RGB")
    try:
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            return _onto_white(image.convert("RGBA"))
        return image if image.mode == "RGB" else image.convert("RGB")
    except ValueError:  # e.g. premultiplied "La"
        raise ImageLoadError(f"unsupported colour mode {image.mode}") from None


def _onto_white(rgba: Image.Image) -> Image.Image:
    """Composite an RGBA image onto a white background."""
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> Image.Image:
    """Validate an H×W[×C] array and convert it to an RGB image."""
    channels = array.shape[2] if array.ndim == 3 else 1
    if array.size == 0 or array.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise ImageLoadError(f"{ARRAY_SHAPE}; got shape {array.shape}")
    if not (_is_uint(array, 1) or _is_uint(array, 2) or array.dtype.kind == "f"):
        raise ImageLoadError(f"{ARRAY_DTYPE}; got {array.dtype}")
    _check_pixels(array.shape[1], array.shape[0], max_pixels)
    if channels == 1:
        array = array.reshape(array.shape[:2])
    if channels == 4:
        colour = _to_uint8(array[..., :3])
        alpha = _alpha_to_uint8(array[..., 3])
        return _onto_white(Image.fromarray(np.dstack([colour, alpha])))
    return Image.fromarray(np.ascontiguousarray(_to_uint8(array))).convert("RGB")


def _to_uint8(values: np.ndarray, *, unit_floats: bool = True) -> np.ndarray:
    """uint8 as is; floats within [0, 1] times 255 (if `unit_floats`); anything else min–max to 0–255."""
    if _is_uint(values, 1):
        return values
    if values.dtype.kind == "f":
        _check_finite(values)
        if unit_floats and values.min() >= 0 and values.max() <= 1:
            return np.rint(values.astype(np.float32) * 255).astype(np.uint8)
    return np.rint(_unit_range(values) * 255).astype(np.uint8)


def _alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    """Alpha channel to uint8: uint16 read as 0–65535, floats clipped to [0, 1]."""
    if _is_uint(alpha, 1):
        return alpha
    if _is_uint(alpha, 2):
        return np.rint(alpha / 257).astype(np.uint8)
    _check_finite(alpha)
    return np.rint(np.clip(alpha, 0, 1) * 255).astype(np.uint8)


def _is_uint(values: np.ndarray, itemsize: int) -> bool:
    """True for unsigned integers of `itemsize` bytes, in either byte order."""
    return values.dtype.kind == "u" and values.dtype.itemsize == itemsize


def _unit_range(values: np.ndarray) -> np.ndarray:
    """Scale the actual min–max of `values` to [0, 1] (float32; a constant array gives zeros)."""
    _check_finite(values)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.float32)
    work = np.float64 if values.dtype == np.float64 else np.float32
    return ((values.astype(work) - low) / (high - low)).astype(np.float32, copy=False)


def _check_finite(values: np.ndarray) -> None:
    """Refuse NaN and infinite values."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ImageLoadError("the image contains NaN or infinite values")
