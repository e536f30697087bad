"""Turn whatever a user hands us into a safe RGB image, or a clear error.

:func:`load_image` accepts a file path, raw bytes, a ``PIL.Image.Image`` or a NumPy array and returns a
new ``PIL.Image.Image`` of mode ``"RGB"`` (8 bits per channel). Anything it cannot use raises
:class:`ImageLoadError` (a ``ValueError``) with a one-line message that can be shown to the user as is
(quoted in backticks below; NAME is the file name, X/Y/W/H/N/M are numbers).

| Input | Result |
| --- | --- |
| path that does not exist | `file not found: NAME` |
| path to a folder | `NAME is a folder, not an image file` (a device or pipe: `NAME is not a regular file`) |
| more than `max_bytes` (20 MB) | `file is X MB; the limit is Y MB` (size checked before reading) |
| 0-byte file or empty bytes | `the file is empty` |
| text, zip or other non-image data | `not a recognised image (PNG, JPEG, BMP, TIFF, WebP or DICOM)` |
| truncated or corrupt image | `the image file is corrupt or truncated` (found by a full decode) |
| more than `max_pixels` (40 M) | `image is W×H px (N pixels); the limit is M pixels`, from the header alone |
| beyond PIL's own bomb limit (~179 M) | `image has N pixels; the limit is M pixels` |
| animated or multi-frame (GIF, PNG, WebP, TIFF) | `animated or multi-frame images are not supported; ...` |
| multi-picture JPEG (MPO, from phone cameras) | its primary (first) picture |
| JPEG/TIFF with an EXIF orientation | turned upright (`ImageOps.exif_transpose`) |
| grayscale `L`, 1-bit `1`, palette `P`, `CMYK`, `YCbCr`, `LAB`, `HSV` | converted to RGB |
| transparency (`RGBA`, `LA`, `PA`, or `P`/`RGB`/`L` with a transparent colour) | composited onto white |
| 16/32-bit grayscale (`I;16`, `I;16B`, `I`, `F`) | min–max of the actual data scaled to 0–255 |
| array H×W, H×W×1, H×W×3 or H×W×4 of uint8 | used as is (4 channels = RGBA, composited onto white) |
| array of uint16, or of floats not all within [0, 1] | min–max of the colour channels scaled to 0–255 |
| array of floats all within [0, 1] | multiplied by 255 |
| array of another shape or dtype, empty, or with NaN/inf | a message naming the expected shape or dtype |
| smaller than 16 px on either side | `image is W×H px; at least 16×16 is needed` |
| DICOM (`DICM` at byte 128) | decoded by :mod:`diffmic.dicom` (table there) |

Only the PNG, JPEG, BMP, TIFF, WebP and GIF decoders of Pillow are ever given the bytes. PIL's global
settings (``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``) are left untouched. A
constant image that needs min–max scaling becomes black. Alpha in a float array is clipped to [0, 1];
alpha in a uint16 array is read as 0–65535.

DICOM files are read by :mod:`diffmic.dicom`: the first frame as the file says to display it (Modality LUT,
then its VOI LUT or window, MONOCHROME1 inverted; min–max when it gives neither), with its own size checks.

An image is decoded and checked once: :func:`decode` wraps what :func:`load_image` returns in a
:class:`DecodedImage`, which :func:`rgb_image` (the pipeline's entry) passes on as it is, with no second
check or copy; any other input goes through :func:`load_image` there. Modes and arrays are converted to
RGB by :mod:`diffmic.rgb_conversion`.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES: int = 20 * 1024 * 1024
MAX_PIXELS: int = 40_000_000
MIN_SIDE: int = 16

_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")  # never hand untrusted bytes to other decoders
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
# Anything a decoder may raise on malformed data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error)

NOT_AN_IMAGE = "not a recognised image (PNG, JPEG, BMP, TIFF, WebP or DICOM)"
CORRUPT = "the image file is corrupt or truncated"
MULTI_FRAME = "animated or multi-frame images are not supported; export a single frame"


class ImageLoadError(ValueError):
    """Raised with a one-line, human-readable message saying what is wrong with the input."""


@dataclass(frozen=True)
class DecodedImage:
    """An image :func:`load_image` has already decoded and checked (RGB, 8 bits, within the limits): what
    takes one (the pipeline, through :func:`rgb_image`) uses it as it is. Made by :func:`decode`; never
    modified in place."""

    image: Image.Image

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.size


def decode(
    source: str | os.PathLike | bytes | Image.Image | np.ndarray,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> DecodedImage:
    """:func:`load_image` once, its result marked as checked (see :class:`DecodedImage`)."""
    return DecodedImage(load_image(source, max_bytes=max_bytes, max_pixels=max_pixels))


def rgb_image(source: str | os.PathLike | bytes | Image.Image | np.ndarray | DecodedImage) -> Image.Image:
    """The RGB image of an input: a :class:`DecodedImage`'s own (no second check), else :func:`load_image`."""
    return source.image if isinstance(source, DecodedImage) else load_image(source)


def load_image(
    source: str | os.PathLike | bytes | Image.Image | np.ndarray,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Load a path, bytes, PIL image or array as an RGB image; raise ImageLoadError if it is unusable."""
    if isinstance(source, Image.Image):
        image = _pil_to_rgb(source, max_pixels)
    elif isinstance(source, np.ndarray):
        from .rgb_conversion import _array_to_rgb  # imports this module: imported when first needed

        image = _array_to_rgb(source, max_pixels)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        size = memoryview(source).nbytes
        if size > max_bytes:
            raise ImageLoadError(_too_big(size, max_bytes))
        image = _bytes_to_rgb(bytes(source), max_bytes, max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        image = _bytes_to_rgb(_read_file(Path(source), max_bytes), max_bytes, max_pixels)
    else:
        raise ImageLoadError(f"cannot load an image from a {type(source).__name__}")
    return _check_min_size(image)


def is_dicom(data: bytes) -> bool:
    """True if `data` carries the DICOM ``DICM`` magic after the 128-byte preamble."""
    return bytes(data[128:132]) == b"DICM"


def load_dicom(data: bytes, *, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a DICOM file (first frame) into an 8-bit RGB image as the file says to display it."""
    from .dicom import dicom_to_image  # imports this module: imported when first needed

    return _check_min_size(dicom_to_image(data, max_bytes=max_bytes, max_pixels=max_pixels))


# --- files and bytes ---------------------------------------------------------------------------------


def _read_file(path: Path, max_bytes: int) -> bytes:
    """Read a file after checking that it exists, is a regular file and is neither empty nor too big."""
    name = path.name or str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(f"file not found: {name}") from None
    except (OSError, ValueError) as exc:
        raise ImageLoadError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(f"{name} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(f"{name} is not a regular file")
    if info.st_size > max_bytes:
        raise ImageLoadError(_too_big(info.st_size, max_bytes))
    if info.st_size == 0:
        raise ImageLoadError("the file is empty")
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise ImageLoadError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ImageLoadError(_too_big(len(data), max_bytes))
    return data


def _bytes_to_rgb(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode the bytes of a DICOM or common image file."""
    if not data:
        raise ImageLoadError("the file is empty")
    if is_dicom(data):
        return load_dicom(data, max_bytes=max_bytes, max_pixels=max_pixels)
    # PIL warns about images above its own limit; ours is checked explicitly instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_FORMATS)  # lazy: reads the header only
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc, max_pixels) from None
        except UnidentifiedImageError:
            looks_like_image = data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
            raise ImageLoadError(CORRUPT if looks_like_image else NOT_AN_IMAGE) from None
        except _DECODE_ERRORS:
            raise ImageLoadError(CORRUPT) from None
        with image:
            return _pil_to_rgb(image, max_pixels)


def _too_big(size: int, limit: int) -> str:
    """The message for a file of `size` bytes over the `limit`."""
    return f"file is {_megabytes(size)} MB; the limit is {_megabytes(limit)} MB"


def _megabytes(n: int) -> str:
    """Bytes as MB with one decimal (three significant digits below 1 MB)."""
    mb = n / (1024 * 1024)
    return f"{mb:.1f}" if mb >= 1 else f"{mb:.3g}"


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image with more than `max_pixels` pixels (a decompression bomb or just too big)."""
    if width * height > max_pixels:
        raise ImageLoadError(
            f"image is {width}×{height} px ({width * height:,} pixels); the limit is {max_pixels:,} pixels"
        )


def _bomb_error(exc: Exception, max_pixels: int) -> ImageLoadError:
    """Our message for an image that PIL itself refused as a decompression bomb."""
    numbers = [int(n) for n in re.findall(r"(\d+) pixels", str(exc))]  # PIL gives the size, then its limit
    size = f"{numbers[0]:,} pixels" if numbers else "too many pixels"
    limit = min([max_pixels, *numbers[1:2]])
    return ImageLoadError(f"image has {size}; the limit is {limit:,} pixels")


def _check_min_size(image: Image.Image) -> Image.Image:
    """Refuse images too small to classify."""
    width, height = image.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageLoadError(f"image is {width}×{height} px; at least {MIN_SIDE}×{MIN_SIDE} is needed")
    return image


# --- PIL images ----------------------------------------------------------------------------------------


def _pil_to_rgb(image: Image.Image, max_pixels: int) -> Image.Image:
    """Check size and frames, decode fully, apply EXIF orientation and convert to RGB (a new image)."""
    from .rgb_conversion import _mode_to_rgb  # imports this module: imported when first needed

    _check_pixels(*image.size, max_pixels)
    try:
        animated = getattr(image, "is_animated", False)  # a GIF is read up to its second frame here
    except _DECODE_ERRORS:
        raise ImageLoadError(CORRUPT) from None
    if animated and image.format != "MPO":
        raise ImageLoadError(MULTI_FRAME)
    try:
        image.load()  # full decode: truncated data fails here (PIL's LOAD_TRUNCATED_IMAGES is left off)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc, max_pixels) from None
    except _DECODE_ERRORS:
        raise ImageLoadError(CORRUPT) from None
    try:
        upright = ImageOps.exif_transpose(image) or image.copy()  # a copy either way
    except Exception:  # a malformed EXIF block only costs us the orientation
        upright = image.copy()
    return _mode_to_rgb(upright)
