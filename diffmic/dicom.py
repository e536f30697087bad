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
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .imageio import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    ImageLoadError,
    _check_pixels,
    _megabytes,
    _read_file,
    _to_uint8,
    _too_big,
    is_dicom,
)

MAX_READS: int = 40_000  # reads pydicom may make while parsing: a few per element or sequence item
MAX_ATTRIBUTE_BYTES: int = 4096  # an image-pixel (0028,xxxx) element other than a LUT
MAX_LUT_BYTES: int = 256 * 1024  # a palette, Modality or VOI LUT element (65,536 entries of 16 bits and more)
MAX_LUT_ITEMS: int = 64  # items of a Modality or VOI LUT sequence
# palette colour LUT data (segmented or not), Modality LUT and VOI LUT sequences
_LUT_TAGS = frozenset(
    {0x00281201, 0x00281202, 0x00281203, 0x00281221, 0x00281222, 0x00281223, 0x00283000, 0x00283010}
)
BYTES_PER_PIXEL: int = 4  # a decoded frame may hold this many bytes per allowed pixel (as RGBA does)
_SMALL = 1024  # the largest value read for the metadata (modality, spacing, window, ...)
_PIXEL_KEYS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
CORRUPT_DICOM = "the DICOM file is corrupt or truncated"
NO_PIXELS = "the DICOM file has no pixel data"


class _TooManyReads(Exception):
    """pydicom read the file more often than ``MAX_READS``."""


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


# --- parsing ---------------------------------------------------------------------------------------------


class _CountedReads(io.BytesIO):
    """Bytes that may be read at most ``limit`` times (pydicom reads a few times per element)."""

    def __init__(self, data: bytes, limit: int):
        super().__init__(data)
        self._left = limit

    @property
    def exhausted(self) -> bool:
        return self._left < 0

    def read(self, size: int | None = -1) -> bytes:
        self._left -= 1
        if self._left < 0:
            raise _TooManyReads
        return super().read(size)


def parse_dicom(data: bytes, *, max_bytes: int = MAX_FILE_BYTES, max_reads: int = MAX_READS):
    """Parse a DICOM file with pydicom within the limits above; values are converted only when used."""
    import pydicom

    source = None
    try:
        inflated = _inflate_if_deflated(data, max_bytes)
        if inflated is None:
            source = _CountedReads(data, max_reads)
            ds = pydicom.dcmread(source, force=False)
        else:
            preamble, meta, body = inflated
            source = _CountedReads(body, max_reads)
            dataset = pydicom.filereader.read_dataset(source, False, True)
            ds = pydicom.dataset.FileDataset(
                "", dataset, preamble=preamble, file_meta=meta, is_implicit_VR=False, is_little_endian=True
            )
        _check_elements(ds)
    except ImageLoadError:
        raise
    except Exception as exc:  # pydicom raises many kinds of errors on malformed files (and may wrap ours)
        if source is not None and source.exhausted:
            raise ImageLoadError(
                f"the DICOM file has too many elements or sequence items (over {max_reads:,} reads to parse)"
            ) from None
        raise ImageLoadError(CORRUPT_DICOM) from exc
    return ds


def _check_elements(ds) -> None:
    """Refuse unknown value representations and oversized image-pixel (0028) elements, unconverted."""
    from pydicom.dataelem import RawDataElement

    for tag in ds.keys():
        element = ds.get_item(tag, keep_deferred=True)  # never converted here
        if element.VR not in _known_vrs():
            raise ImageLoadError(CORRUPT_DICOM)
        if element.tag.group != 0x0028 or not isinstance(element, RawDataElement):
            continue
        lut = element.tag in _LUT_TAGS
        limit = MAX_LUT_BYTES if lut else MAX_ATTRIBUTE_BYTES
        items = element.value.count(b"\xfe\xff\x00\xe0") + element.value.count(b"\xff\xfe\xe0\x00")
        if element.length > limit or (element.VR == "SQ" and items > MAX_LUT_ITEMS):
            what = f"{element.length:,} bytes" if element.length > limit else f"{items:,} items"
            raise ImageLoadError(
                f"the DICOM attribute {element.tag} holds {what}; the limit is {limit:,} bytes"
                + (f" and {MAX_LUT_ITEMS} items" if element.VR == "SQ" else "")
            )


@functools.cache
def _known_vrs() -> frozenset[str]:
    """The value representations pydicom knows, its ambiguous ones (``US or SS``, ...) included."""
    from pydicom.valuerep import VR

    return frozenset({str(vr.value) for vr in VR} | {None})


def _inflate_if_deflated(data: bytes, max_bytes: int):
    """(preamble, file meta, inflated dataset) for a Deflated Explicit VR file, else None.

    pydicom would inflate the whole dataset at once, however large; here at most `max_bytes` come out."""
    from pydicom import filereader
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    meta_reader = getattr(filereader, "_read_file_meta_info", None)
    if meta_reader is None:  # a pydicom without it: let dcmread inflate (unbounded)
        return None
    fp = io.BytesIO(data)
    preamble = filereader.read_preamble(fp, False)
    meta = meta_reader(fp)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:  # pydicom's own test
        return None
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        body = inflater.decompress(data[fp.tell() :], max_bytes + 1)
    except zlib.error as exc:
        raise ImageLoadError(CORRUPT_DICOM) from exc
    if len(body) > max_bytes:
        raise ImageLoadError(
            f"the DICOM file inflates beyond {_megabytes(max_bytes)} MB; the limit is "
            f"{_megabytes(max_bytes)} MB"
        )
    return preamble, meta, body


def _raw_length(ds, keyword: str) -> int | None:
    """The encoded length of a top-level element not yet converted (None if converted or absent)."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    tag = tag_for_keyword(keyword)
    element = ds.get_item(tag) if tag is not None and tag in ds else None
    return element.length if isinstance(element, RawDataElement) else None


def _value(ds, keyword: str, limit: int = _SMALL):
    """A top-level element's value if present, at most `limit` bytes encoded and well-formed; else None."""
    try:
        if keyword not in ds:
            return None
        length = _raw_length(ds, keyword)
        if length is not None and length > limit:  # also undefined lengths (0xFFFFFFFF)
            return None
        return ds[keyword].value
    except Exception:  # a malformed value
        return None


def _numbers(value) -> list[float]:
    """A DICOM number or multi-valued number as a list of floats (ValueError/TypeError if not numbers)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float)):
        values = [value]
    else:
        values = list(value)
    return [float(v) for v in values]


def _first(value) -> float | None:
    """The first value of a possibly multi-valued number, if finite."""
    try:
        numbers = _numbers(value)
    except (TypeError, ValueError):
        return None
    return numbers[0] if numbers and math.isfinite(numbers[0]) else None


def _whole(ds, keyword: str) -> int | None:
    """A non-negative whole number element (Rows, Columns, NumberOfFrames, ...), or None."""
    number = _first(_value(ds, keyword))
    return int(number) if number is not None and number >= 0 and number == int(number) else None


def _text(ds, keyword: str) -> str | None:
    """A short code string, reduced to letters, digits, spaces and ``-./()`` (safe to show as markdown)."""
    value = _value(ds, keyword, 256)
    if value is None or not isinstance(value, str) and not hasattr(value, "__iter__"):
        return None
    text = value if isinstance(value, str) else "/".join(str(v) for v in value)
    text = " ".join(re.sub(r"[^A-Za-z0-9 .()/-]", " ", text).split())[:40]
    return text or None


def _spacing(ds, keyword: str) -> tuple[float, float] | None:
    """Two positive, finite spacings in mm, or None."""
    try:
        numbers = _numbers(_value(ds, keyword))
    except (TypeError, ValueError):
        return None
    if len(numbers) != 2 or not all(math.isfinite(v) and 0 < v < 1e4 for v in numbers):
        return None
    return numbers[0], numbers[1]


# --- size checks and the first frame ---------------------------------------------------------------------


def _check_frame(ds, max_pixels: int) -> tuple[int, int]:
    """Check what the header says about the frame before a pixel is decoded; return (rows, cols)."""
    rows, cols = _whole(ds, "Rows"), _whole(ds, "Columns")
    if not rows or not cols:
        raise ImageLoadError("the DICOM file does not give the image size (Rows/Columns)")
    _check_pixels(cols, rows, max_pixels)
    samples, bits = _whole(ds, "SamplesPerPixel") or 1, _whole(ds, "BitsAllocated")
    if samples not in (1, 3):
        raise ImageLoadError(
            f"the DICOM image has {samples} samples per pixel; 1 (grey) or 3 (colour) are read"
        )
    if bits not in (1, 8, 16, 32, 64):
        raise ImageLoadError(f"the DICOM image has {bits} bits allocated; 1, 8, 16, 32 or 64 are read")
    decoded, limit = rows * cols * samples * max(bits, 8) // 8, BYTES_PER_PIXEL * max_pixels
    if decoded > limit:
        raise ImageLoadError(
            f"the DICOM frame is {_megabytes(decoded)} MB once decoded; the limit is {_megabytes(limit)} MB"
        )
    return rows, cols


@functools.cache
def _pydicom_pixels() -> dict:
    """pydicom's pixel helpers: ``pydicom.pixels`` (pydicom 3) or the older pixel_data_handlers (2.x)."""
    try:
        from pydicom import pixels as helpers
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers import util as helpers
    names = ("apply_modality_lut", "apply_color_lut", "convert_color_space")
    functions = {name: getattr(helpers, name) for name in names}
    functions["pixel_array"] = getattr(helpers, "pixel_array", None)
    return functions


def _first_frame(ds, rows: int, cols: int) -> np.ndarray:
    """Decode the first frame; colour comes back as RGB. Undecodable data raises ImageLoadError."""
    from pydicom.uid import UID

    functions = _pydicom_pixels()
    syntax = ds.file_meta.get("TransferSyntaxUID")
    syntax = syntax if isinstance(syntax, UID) else None  # a malformed file may hold several values
    compressed = _is_compressed(syntax)
    try:
        if compressed:
            _check_codestream_size(ds, syntax, rows, cols)
        if functions["pixel_array"] is not None:  # pydicom 3: decodes only frame 0, YBR -> RGB
            return functions["pixel_array"](ds, index=0)
        pixels = ds.pixel_array  # pydicom 2: all frames, colour space as stored
        if int(ds.get("NumberOfFrames") or 1) > 1:
            pixels = pixels[0]
        photometric = str(ds.get("PhotometricInterpretation", ""))
        if photometric.startswith("YBR") and pixels.ndim == 3 and not compressed:
            pixels = functions["convert_color_space"](pixels, photometric, "RGB")
        return pixels
    except ImageLoadError:
        raise
    except (NotImplementedError, RuntimeError) as exc:
        if compressed:
            message = (
                f"the DICOM image is compressed as {syntax.name} ({syntax}), which no installed decoder "
                "can read; export it uncompressed"
            )
        elif syntax is not None and syntax.name == str(syntax):  # pydicom does not know this UID
            message = f"the DICOM file has an unknown transfer syntax ({syntax}); export it uncompressed"
        else:
            message = "the DICOM pixel data could not be decoded"
        raise ImageLoadError(message) from exc
    except Exception as exc:  # wrong lengths, inconsistent tags, ...
        raise ImageLoadError("the DICOM pixel data is corrupt or truncated") from exc


def _jp2_box_of_length_zero(frame: bytes) -> bool:
    """True when the JP2 boxes before the codestream include one of length 0, on which pydicom 3.0's
    ``get_j2k_parameters`` (run before any decoder) loops forever."""
    if not frame.startswith(b"\x00\x00\x00\x0c\x6a\x50\x20\x20"):
        return False
    offset = 12
    while offset < len(frame):  # pydicom's walk, which advances by each box's length
        length = int.from_bytes(frame[offset : offset + 4], "big")
        if frame[offset + 4 : offset + 8] == b"jp2c":
            return False
        if length == 0:
            return True
        offset += length
    return False


def _is_compressed(syntax) -> bool:
    """True for a known compressed transfer syntax (False if missing or unknown)."""
    try:
        return syntax is not None and syntax.is_transfer_syntax and syntax.is_compressed
    except ValueError:  # pydicom 2, for a private UID
        return False


def _check_codestream_size(ds, syntax, rows: int, cols: int) -> None:
    """A JPEG or JPEG 2000 frame declares its own size, which its decoder allocates: it must be the
    header's Rows × Columns. The frame is cut as pydicom's decoder cuts it (pydicom 3)."""
    from pydicom.uid import JPEG2000TransferSyntaxes, JPEGTransferSyntaxes

    if syntax not in (*JPEGTransferSyntaxes, *JPEG2000TransferSyntaxes):
        return  # RLE: pydicom allocates what the header says, already checked
    try:
        from pydicom.encaps import get_frame
        from pydicom.pixels.decoders.base import DecodeRunner
    except ImportError:  # pydicom 2
        return
    runner = DecodeRunner(syntax)
    runner.set_source(ds)
    frame = get_frame(
        runner.src, 0, number_of_frames=runner.number_of_frames, extended_offsets=runner.extended_offsets
    )
    if syntax in JPEG2000TransferSyntaxes and _jp2_box_of_length_zero(frame):
        raise ImageLoadError("the DICOM frame's JPEG 2000 header is corrupt (a box of length 0)")
    try:
        with Image.open(io.BytesIO(frame), formats=("JPEG", "JPEG2000")) as codestream:  # the header only
            width, height = codestream.size
    except Image.DecompressionBombError:
        message = f"the DICOM frame is compressed as a far larger image than {cols}×{rows}"
        raise ImageLoadError(message) from None
    except Exception:  # a header Pillow cannot read: pydicom's Pillow decoder will refuse it too
        return
    if (width, height) != (cols, rows):
        raise ImageLoadError(
            f"the DICOM frame is compressed as {width}×{height} px but its header says {cols}×{rows}"
        )


# --- display ---------------------------------------------------------------------------------------------


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
