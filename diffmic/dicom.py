"""DICOM uploads as a clinician sees them: the first frame through the file's own display settings, and what
the image is (modality, body part, pixel spacing).

Grayscale follows the display pipeline of PS3.3 C.11: stored values → Modality LUT (its sequence, or
RescaleSlope/Intercept) → the first VOI LUT of the VOI LUT Sequence, else the first Window Center/Width
pair (VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID) → inverted for MONOCHROME1 → 0–255. Without a usable
VOI LUT or window the rescaled values are stretched min–max. :func:`read_dicom_info` says which was used.

Nothing in a file is trusted. Before pydicom sees it, a Deflated file is inflated here with a bound;
pydicom may read the file at most ``MAX_READS`` times (a few per element or sequence item, so files of
millions of tiny elements are refused quickly instead of parsing for minutes into gigabytes); elements of
the image-pixel group (0028) over ``MAX_ATTRIBUTE_BYTES`` (LUTs: ``MAX_LUT_BYTES`` and
``MAX_LUT_ITEMS`` items) are refused unread; Rows × Columns is checked
against the pixel limit and the decoded frame against ``BYTES_PER_PIXEL`` bytes per allowed pixel before a
pixel is decoded; a JPEG or JPEG 2000 frame must have the size the header gives before it is decoded; other
values are read only when small and are dropped when malformed.

| DICOM | Result (an ``ImageLoadError`` with this message, or the image) |
| --- | --- |
| not parseable | `the DICOM file is corrupt or truncated` |
| more than ``MAX_READS`` reads while parsing | `the DICOM file has too many elements or sequence items ...` |
| Deflated, inflating beyond the byte limit | `the DICOM file inflates beyond X MB; the limit is Y MB` |
| no pixel data | `the DICOM file has no pixel data` |
| no Rows/Columns, or above the pixel limit | a message naming the size, before any pixel is decoded |
| SamplesPerPixel not 1 or 3, BitsAllocated not 1/8/16/32/64, frame too big | a message naming them |
| pixel data shorter than the header says | `the DICOM pixel data is corrupt or truncated` |
| compressed, no decoder / private transfer syntax | names the transfer syntax; `export it uncompressed` |
| JPEG / JPEG 2000 frame of another size than Rows × Columns | refused before decoding |
| grayscale | Modality LUT, then the VOI LUT or the first window, MONOCHROME1 inverted |
| grayscale without a usable VOI LUT or window | min–max of the rescaled values |
| RGB, YBR_* | colour kept (YBR converted to RGB) |
| PALETTE COLOR | expanded through its palette |
| multi-frame | the first frame |

Each step has its module: :mod:`diffmic.dicom_parse` (parsing within the limits), :mod:`diffmic.dicom_values`
(header values), :mod:`diffmic.dicom_frame` (size checks, the first frame) and :mod:`diffmic.dicom_display`
(Modality LUT, VOI LUT or window).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .dicom_display import _display, _to_display
from .dicom_frame import _check_frame, _first_frame
from .dicom_parse import parse_dicom
from .dicom_values import _spacing, _text, _whole
from .imageio import MAX_FILE_BYTES, MAX_PIXELS, ImageLoadError, _read_file, _too_big, is_dicom

_PIXEL_KEYS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
NO_PIXELS = "the DICOM file has no pixel data"


@dataclass(frozen=True)
class DicomInfo:
    """What a DICOM upload shows and how: read from its header, each field None when absent or malformed."""

    modality: str | None  # (0008,0060), e.g. "CT", "MR", "US"
    body_part: str | None  # (0018,0015) Body Part Examined, e.g. "CHEST"
    pixel_spacing: tuple[float, float] | None  # mm between rows, between columns
    spacing_at_detector: bool  # True: Imager Pixel Spacing (at the detector), not Pixel Spacing (patient)
    size: tuple[int, int]  # (columns, rows) of a frame
    frames: int  # number of frames; the first is shown
    display: str  # "window", "VOI LUT", "min–max", "colour" or "palette"
    window: tuple[float, float] | None  # (centre, width) when display == "window"

    def describe(self) -> str:
        """One line for a clinician, e.g. ``CT · CHEST · 0.66 × 0.66 mm pixels · window 40 / 400``."""
        parts = [self.modality or "modality not given", self.body_part or "body part not given"]
        if self.pixel_spacing is None:
            parts.append("pixel spacing not given")
        else:
            rows, cols = (f"{v:.3g}" for v in self.pixel_spacing)
            spacing = rows if rows == cols else f"{rows} × {cols}"
            parts.append(f"{spacing} mm pixels" + (" (at the detector)" if self.spacing_at_detector else ""))
        if self.display == "window" and self.window is not None:
            parts.append(
                f"shown with the file's window {self.window[0]:g} / {self.window[1]:g} (centre / width)"
            )
        elif self.display == "VOI LUT":
            parts.append("shown with the file's VOI LUT")
        elif self.display == "min–max":
            parts.append("no window in the file: contrast stretched min–max")
        if self.frames > 1:
            parts.append(f"frame 1 of {self.frames}")
        return " · ".join(parts)


def read_dicom_info(
    source: str | os.PathLike | bytes, *, max_bytes: int = MAX_FILE_BYTES
) -> DicomInfo | None:
    """The :class:`DicomInfo` of a DICOM image file (path or bytes); None if it is not DICOM; ImageLoadError
    if it cannot be read or holds no image. No pixel is decoded."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageLoadError(_too_big(len(data), max_bytes))
    else:
        data = _read_file(Path(source), max_bytes)
    if not is_dicom(data):
        return None
    ds = parse_dicom(data, max_bytes=max_bytes)
    if not any(key in ds for key in _PIXEL_KEYS):
        raise ImageLoadError(NO_PIXELS)
    return dicom_info(ds)


def dicom_info(ds) -> DicomInfo:
    """The :class:`DicomInfo` of a parsed dataset (see :func:`parse_dicom`)."""
    spacing, at_detector = _spacing(ds, "PixelSpacing"), False
    if spacing is None:
        spacing = _spacing(ds, "ImagerPixelSpacing")
        at_detector = spacing is not None
    display, window = _display(ds)
    return DicomInfo(
        modality=_text(ds, "Modality"),
        body_part=_text(ds, "BodyPartExamined"),
        pixel_spacing=spacing,
        spacing_at_detector=at_detector,
        size=(_whole(ds, "Columns") or 0, _whole(ds, "Rows") or 0),
        frames=max(_whole(ds, "NumberOfFrames") or 1, 1),
        display=display,
        window=None if window is None else (window.center, window.width),
    )


def dicom_to_image(
    data: bytes, *, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Decode a DICOM file's first frame into an 8-bit RGB image as its display settings say."""
    ds = parse_dicom(data, max_bytes=max_bytes)
    if not any(key in ds for key in _PIXEL_KEYS):
        raise ImageLoadError(NO_PIXELS)
    rows, cols = _check_frame(ds, max_pixels)
    pixels = _first_frame(ds, rows, cols)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            rgb = _to_display(pixels, ds)
    except ImageLoadError:
        raise
    except Exception as exc:  # e.g. a malformed LUT
        raise ImageLoadError("the DICOM file has inconsistent image attributes") from exc
    return Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
