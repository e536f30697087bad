"""Parsing an untrusted DICOM file with pydicom within bounds: a Deflated file inflated here with a limit,
pydicom's reads counted (``MAX_READS``), image-pixel (0028) elements and LUT sequences refused unread
when over ``MAX_ATTRIBUTE_BYTES`` / ``MAX_LUT_BYTES`` / ``MAX_LUT_ITEMS``, unknown value representations
refused."""

from __future__ import annotations

import functools
import io
import zlib

from .imageio import MAX_FILE_BYTES, ImageLoadError, _megabytes

MAX_READS: int = 40_000  # reads pydicom may make while parsing: a few per element or sequence item
MAX_ATTRIBUTE_BYTES: int = 4096  # an image-pixel (0028,xxxx) element other than a LUT
MAX_LUT_BYTES: int = 256 * 1024  # a palette, Modality or VOI LUT element (65,536 entries of 16 bits and more)
MAX_LUT_ITEMS: int = 64  # items of a Modality or VOI LUT sequence
# palette colour LUT data (segmented or not), Modality LUT and VOI LUT sequences
_LUT_TAGS = frozenset(
    {0x00281201, 0x00281202, 0x00281203, 0x00281221, 0x00281222, 0x00281223, 0x00283000, 0x00283010}
)
CORRUPT_DICOM = "the DICOM file is corrupt or truncated"


class _TooManyReads(Exception):
    """pydicom read the file more often than ``MAX_READS``."""


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
