"""The first frame of a parsed DICOM file: what the header says of its size checked before any pixel is
decoded (a JPEG or JPEG 2000 frame's own size too), then decoded by pydicom, colour as RGB."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from .dicom_values import _whole
from .imageio import ImageLoadError, _check_pixels, _megabytes

BYTES_PER_PIXEL: int = 4  # a decoded frame may hold this many bytes per allowed pixel (as RGBA does)


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
