"""DICOM as clinicians see it (``diffmic.dicom``): the file's window, VOI LUT and rescale applied, its
metadata read, and its header never trusted. Expected pixels are computed here from pydicom's raw array
and the tags, with the formulas of PS3.3 C.11.2.1.2, not with the module's code."""

from __future__ import annotations

import io
import re
import struct
import tracemalloc
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit

from app.controls import scan_details
from diffmic.dicom import DicomInfo, read_dicom_info
from diffmic.dicom_parse import MAX_READS
from diffmic.imageio import ImageLoadError, load_image
from tests.test_imageio import dicom_bytes, encode, pixels


def sample_file(name: str) -> Dataset:
    """One of pydicom's own test files (installed with it, offline)."""
    return pydicom.dcmread(get_testdata_file(name))


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def shown(data: bytes) -> np.ndarray:
    """The grey values the loader shows (its three channels are equal)."""
    out = pixels(load_image(data))
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    return out[..., 0].astype(int)


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) onto 0-255, written out piecewise."""
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    between = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(values <= low, 0, np.where(values > high, 255, np.rint(between))).astype(int)


def test_ct_is_shown_through_its_window_not_min_max():
    ds = sample_file("CT_small.dcm")
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # pydicom's CT has no window: min-max of the Hounsfield units
    stretched = np.rint((hu - hu.min()) / (hu.max() - hu.min()) * 255).astype(int)
    assert np.abs(shown(to_bytes(ds)) - stretched).max() <= 1
    # with a soft-tissue window (centre 40 HU, width 400 HU) what is outside clips to black and white
    ds.WindowCenter, ds.WindowWidth = 40, 400
    out = shown(to_bytes(ds))
    expected = linear_window(hu, 40, 400)
    below, above = hu <= 40 - 0.5 - 399 / 2, hu > 40 - 0.5 + 399 / 2
    assert below.sum() > 1000 and above.sum() > 1000  # both ends really occur in this slice
    assert (out[below] == 0).all() and (out[above] == 255).all()
    assert np.abs(out - expected).max() <= 1
    assert (out == 0).sum() > 10 * (stretched == 0).sum()  # the window, not a stretch
    info = read_dicom_info(to_bytes(ds))
    assert (info.modality, info.display, info.window) == ("CT", "window", (40.0, 400.0))
    assert info.pixel_spacing == pytest.approx((0.661468, 0.661468))


def test_mr_file_window_and_monochrome1():
    ds = sample_file("MR_small.dcm")  # its own window: centre 600, width 1600
    raw = ds.pixel_array.astype(float)
    expected = linear_window(raw, float(ds.WindowCenter), float(ds.WindowWidth))
    assert np.abs(shown(to_bytes(ds)) - expected).max() <= 1
    ds.PhotometricInterpretation = "MONOCHROME1"  # high values dark, after the window
    assert np.abs(shown(to_bytes(ds)) - (255 - expected)).max() <= 1


def test_multi_valued_window_uses_the_first_pair_and_metadata_is_read():
    ds = sample_file("examples_overlay.dcm")  # MR abdomen, WindowCenter [450, 200], WindowWidth [790, 443]
    center, width = float(ds.WindowCenter[0]), float(ds.WindowWidth[0])
    expected = linear_window(ds.pixel_array.astype(float), center, width)
    assert np.abs(shown(to_bytes(ds)) - expected).max() <= 1
    info = read_dicom_info(get_testdata_file("examples_overlay.dcm"))  # a path
    assert info == DicomInfo(
        modality="MR",
        body_part="ABDOMEN",
        pixel_spacing=(pytest.approx(0.72314049586777), pytest.approx(0.72314049586777)),
        spacing_at_detector=False,
        size=(ds.Columns, ds.Rows),
        frames=1,
        display="window",
        window=(450.0, 790.0),
    )
    text = info.describe()
    assert text.startswith("MR · ABDOMEN · 0.723 mm pixels") and "window 450 / 790" in text


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_other_voi_functions(function):
    stored = np.tile(np.arange(0, 512, 2, dtype=np.uint16), (16, 1))  # 16 × 256
    data = dicom_bytes(stored, WindowCenter=256, WindowWidth=100, VOILUTFunction=function)
    x = stored.astype(float)
    if function == "LINEAR_EXACT":
        expected = np.clip((x - 256) / 100 + 0.5, 0, 1) * 255
    else:
        expected = 255 / (1 + np.exp(-4 * (x - 256) / 100))
    assert np.abs(shown(data) - np.rint(expected)).max() <= 1


def test_eight_bit_voi_lut_longer_than_256_entries():
    """pydicom 3.0's apply_voi wraps indices above 255 for 8-bit LUTs; ours does not."""
    lut = Dataset()
    lut.LUTDescriptor = [1024, 0, 8]
    lut.LUTData = (np.arange(1024) // 4).astype("<u2").tobytes()  # 0 ... 255
    lut["LUTData"].VR = "OW"
    stored = np.tile(np.arange(0, 1024, 4, dtype=np.uint16), (16, 1))
    out = shown(dicom_bytes(stored, VOILUTSequence=[lut], WindowCenter=10, WindowWidth=5))
    assert (out[0] == np.arange(0, 1024, 4) // 4).all()  # the LUT, not the window
    assert read_dicom_info(dicom_bytes(stored, VOILUTSequence=[lut])).display == "VOI LUT"


def test_unusable_window_falls_back_to_min_max():
    stored = np.linspace(1000, 1400, 256).reshape(16, 16).astype(np.uint16)
    expected = np.rint((stored - 1000.0) / 400 * 255)
    for bad in ({"WindowCenter": 1200, "WindowWidth": 0}, {"WindowCenter": 1200}, {}):
        data = dicom_bytes(stored, **bad)
        assert np.abs(shown(data) - expected).max() <= 1
        assert read_dicom_info(data).display == "min–max"
        assert "contrast stretched min–max" in read_dicom_info(data).describe()


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_metadata_is_checked_and_made_safe_to_show():
    stored = np.zeros((16, 16), np.uint8)
    data = dicom_bytes(
        stored, Modality="DX", BodyPartExamined="*CHEST*_[x](y)", ImagerPixelSpacing=[0.1, 0.2]
    )
    info = read_dicom_info(data)
    assert (info.modality, info.body_part) == ("DX", "CHEST x (y)")  # no markdown or links
    assert info.pixel_spacing == (0.1, 0.2) and info.spacing_at_detector
    assert "0.1 × 0.2 mm pixels (at the detector)" in info.describe()
    info = read_dicom_info(dicom_bytes(stored, PixelSpacing=[-1, 0.5]))
    assert info.pixel_spacing is None and "pixel spacing not given" in info.describe()
    assert read_dicom_info(encode(Image.new("RGB", (16, 16)), "PNG")) is None  # not DICOM


def test_app_shows_the_metadata_under_the_preview(tmp_path):
    ds = sample_file("CT_small.dcm")
    ds.BodyPartExamined = "CHEST"
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(ds))
    line = scan_details(str(path))
    assert "CT" in line and "CHEST" in line and "0.661 mm pixels" in line and "min–max" in line
    png = tmp_path / "x.png"
    png.write_bytes(encode(Image.new("RGB", (16, 16)), "PNG"))
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 3)
    assert scan_details(str(png)) == scan_details(str(broken)) == scan_details(None) == ""


# --- the header is never trusted ---------------------------------------------------------------------


def test_deflated_file_decodes_and_a_deflate_bomb_is_refused():
    ds = sample_file("image_dfl.dcm")  # a real Deflated Explicit VR Little Endian file
    assert ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    expected = np.rint((ds.pixel_array - ds.pixel_array.min()) / np.ptp(ds.pixel_array) * 255)
    assert np.abs(shown(open(get_testdata_file("image_dfl.dcm"), "rb").read()) - expected).max() <= 1
    big = dicom_bytes(np.zeros((1024, 1024), np.uint16), syntax=DeflatedExplicitVRLittleEndian)
    assert len(big) < 20_000  # 2 MB of zeros deflate to a few kB
    tracemalloc.start()
    with pytest.raises(
        ImageLoadError, match=r"^the DICOM file inflates beyond 1\.0 MB; the limit is 1\.0 MB$"
    ):
        load_image(big, max_bytes=1024 * 1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * 1024 * 1024


def sequence_of_items(n: int, *, defined_length: bool) -> bytes:
    """A private sequence element (0009,1010) of `n` empty items, after its private creator."""
    items = (b"\xfe\xff\x00\xe0" + struct.pack("<I", 0)) * n
    header = struct.pack("<HH", 0x0009, 0x1010) + b"SQ\0\0"
    if defined_length:
        element = header + struct.pack("<I", len(items)) + items
    else:
        element = header + b"\xff\xff\xff\xff" + items + b"\xfe\xff\xdd\xe0\0\0\0\0"
    creator = struct.pack("<HH", 0x0009, 0x0010) + b"LO" + struct.pack("<H", 4) + b"TEST"
    return creator + element


def insert_before_pixels(data: bytes, elements: bytes) -> bytes:
    position = data.index(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data, explicit VR little endian
    return data[:position] + elements + data[position:]


@pytest.mark.slow  # parses MAX_READS reads' worth of items with allocations traced
def test_millions_of_sequence_items_are_refused_unparsed():
    """pydicom parses an undefined-length sequence while reading: 200,000 empty items (1.6 MB) used to
    take 13 s and 130 MB; now parsing stops after MAX_READS reads."""
    base = dicom_bytes(np.zeros((16, 16), np.uint8))
    data = insert_before_pixels(base, sequence_of_items(200_000, defined_length=False))
    tracemalloc.start()
    with pytest.raises(
        ImageLoadError, match=f"too many elements or sequence items \\(over {MAX_READS:,} reads"
    ):
        load_image(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 1024 * 1024
    # a defined-length one is never parsed, since nothing reads it
    data = insert_before_pixels(base, sequence_of_items(200_000, defined_length=True))
    assert pixels(load_image(data)).shape == (16, 16, 3)


def test_oversized_image_attributes_are_refused_unread():
    stored = np.zeros((16, 16), np.uint16)
    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 16]
    lut.LUTData = np.arange(4, dtype="<u2").tobytes()
    lut["LUTData"].VR = "OW"
    with pytest.raises(ImageLoadError, match=r"attribute \(0028,3010\) holds 100 items; the limit is"):
        load_image(dicom_bytes(stored, VOILUTSequence=[lut] * 100))
    data = dicom_bytes(stored, WindowCenter=[str(v) for v in range(2000)], WindowWidth=100)
    with pytest.raises(
        ImageLoadError, match=r"attribute \(0028,1050\) holds [\d,]+ bytes; the limit is 4,096"
    ):
        load_image(data)


@pytest.mark.parametrize(
    "elements, message",
    [
        ({"SamplesPerPixel": 4}, "4 samples per pixel; 1 (grey) or 3 (colour) are read"),
        ({"BitsAllocated": 12}, "12 bits allocated; 1, 8, 16, 32 or 64 are read"),
        ({"Rows": 0}, "does not give the image size"),
    ],
)
def test_frame_description_is_checked_before_decoding(elements, message):
    with pytest.raises(ImageLoadError, match=re.escape(message)):
        load_image(dicom_bytes(np.zeros((16, 16), np.uint8), **elements))


def test_decoded_frame_budget():
    """A frame of 64-bit colour at the pixel limit would need 24 bytes per pixel: refused from the header."""
    data = dicom_bytes(
        np.zeros((16, 16, 3), np.uint8), Rows=1000, Columns=1000, SamplesPerPixel=3, BitsAllocated=64
    )
    with pytest.raises(
        ImageLoadError, match=r"^the DICOM frame is 22\.9 MB once decoded; the limit is 15\.3 MB$"
    ):
        load_image(data, max_pixels=4_000_000)


def jpeg_dicom(jpeg: bytes, rows: int, cols: int) -> bytes:
    return dicom_bytes(
        np.zeros((rows, cols), np.uint8),
        syntax=JPEGBaseline8Bit,
        frames=[jpeg],
        BitsStored=8,
        HighBit=7,
    )


def test_jpeg_frame_must_have_the_header_size():
    grey = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1)))  # 64 × 48
    jpeg = encode(grey, "JPEG", quality=95)
    out = shown(jpeg_dicom(jpeg, 48, 64))
    assert np.abs(out - np.rint(np.asarray(grey) / 252 * 255)).max() <= 6  # lossy, then min-max
    with pytest.raises(ImageLoadError, match=r"compressed as 64×48 px but its header says 16×16$"):
        load_image(jpeg_dicom(jpeg, 16, 16))


def test_jpeg2000_frame_claiming_trillions_of_pixels():
    data = open(get_testdata_file("JPEG2000-embedded-sequence-delimiter.dcm"), "rb").read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageLoadError, match="compressed as a far larger image than"):
            load_image(data)


@pytest.mark.slow
def test_the_line_sits_under_the_preview_and_follows_the_upload(tmp_path):
    from app.models import ModelRegistry
    from app.ui import build_demo
    from tests.test_app_support import make_app_dirs

    settings = make_app_dirs(tmp_path, n_examples=1)
    demo = build_demo(settings, ModelRegistry(settings))
    (wired,) = [fn for fn in demo.fns.values() if fn.fn is scan_details]
    (upload,) = wired.inputs
    (line,) = wired.outputs
    assert upload.elem_id == "upload" and line.elem_id == "scan-info"
    wanted = ("preview", "scan-info", "model")
    ids = [block.elem_id for block in demo.blocks.values() if block.elem_id in wanted]
    assert ids == list(wanted)  # right under the preview, above the model menu
