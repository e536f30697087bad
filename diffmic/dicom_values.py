"""Values read from a parsed DICOM header (see :func:`diffmic.dicom_parse.parse_dicom`): each only when
small and well formed, else None; nothing here decodes pixels."""

from __future__ import annotations

import math
import re

_SMALL = 1024  # the largest value read for the metadata (modality, spacing, window, ...)


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
