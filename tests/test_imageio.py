"""Tests for diffmic.imageio: every input is built here, in memory or in tmp_path."""

from __future__ import annotations

import io
import re
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, SecondaryCaptureImageStorage, generate_uid

from diffmic.imageio import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    ImageLoadError,
    is_dicom,
    load_dicom,
    load_image,
)

NOT_AN_IMAGE = "not a recognised image (PNG, JPEG, BMP, TIFF, WebP or DICOM)"
CORRUPT = "the image file is corrupt or truncated"
MULTI_FRAME = "animated or multi-frame images are not supported; export a single frame"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    """The bytes of `image` saved in format `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A random RGB image (compresses badly, so truncating its file loses real data)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    """The output image as an array, after checking the contract every result must meet."""
    assert image.mode == "RGB"
    array = np.asarray(image)
    assert array.dtype == np.uint8
    return array


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its correct CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a width×height 8-bit grayscale image."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + png_chunk(b"IEND", b"")
    )


# --- files -------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match=r"^file not found: scan\.png$"):
        load_image(tmp_path / "scan.png")


def test_directory(tmp_path):
    (tmp_path / "scans").mkdir()
    with pytest.raises(ImageLoadError, match=r"^scans is a folder, not an image file$"):
        load_image(str(tmp_path / "scans"))


def test_empty_file_and_empty_bytes(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"^the file is empty$"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageLoadError, match=r"^the file is empty$"):
        load_image(b"")


def test_huge_file_is_refused_from_its_size(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    with open(path, "wb") as f:  # sparse: 25 MB on paper, nothing on disk
        f.truncate(25 * 1024 * 1024)
    monkeypatch.setattr("pathlib.Path.open", lambda *a, **k: pytest.fail("the file was opened"))
    with pytest.raises(ImageLoadError, match=r"^file is 25\.0 MB; the limit is 20\.0 MB$"):
        load_image(path)


def test_file_over_a_custom_limit(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(encode(noise(), "PNG"))
    with pytest.raises(ImageLoadError, match=r"^file is 0\.\d+ MB; the limit is 0\.000954 MB$"):
        load_image(path, max_bytes=1000)
    with pytest.raises(ImageLoadError, match=r"^file is 0\.\d+ MB; the limit is 0\.000954 MB$"):
        load_image(path.read_bytes(), max_bytes=1000)
    assert load_image(path).size == (64, 48)  # the default limit lets it through


def test_valid_file_path_loads(tmp_path):
    source = noise()
    path = tmp_path / "photo.png"
    path.write_bytes(encode(source, "PNG"))
    assert np.array_equal(pixels(load_image(path)), np.asarray(source))
    assert np.array_equal(pixels(load_image(str(path))), np.asarray(source))


# --- bytes that are not (whole) images -------------------------------------------------------------


def test_text_and_zip_are_not_images(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("scan.png", encode(noise(), "PNG"))
    (tmp_path / "notes.txt").write_text("patient 17: follow-up in 3 months\n" * 20)
    for source in (tmp_path / "notes.txt", archive.getvalue(), b"%PDF-1.7\n" + b"\0" * 300):
        with pytest.raises(ImageLoadError, match=f"^{re.escape(NOT_AN_IMAGE)}$"):
            load_image(source)


def test_other_pil_formats_are_not_decoded():
    eps_like = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n" + b"\n" * 200
    with pytest.raises(ImageLoadError, match="^not a recognised image"):
        load_image(eps_like)
    with pytest.raises(ImageLoadError, match="^not a recognised image"):
        load_image(encode(noise(), "PCX"))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image(fmt):
    data = encode(noise(256, 256), fmt)
    assert load_image(data).size == (256, 256)
    with pytest.raises(ImageLoadError, match=f"^{CORRUPT}$"):
        load_image(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_header():
    data = bytearray(encode(noise(), "PNG"))
    data[16:24] = b"\xff" * 8  # width/height in IHDR, now with a wrong CRC
    with pytest.raises(ImageLoadError, match=f"^{CORRUPT}$"):
        load_image(bytes(data))


# --- decompression bombs -----------------------------------------------------------------------------


@pytest.fixture
def pixel_work(monkeypatch) -> list[tuple[str, tuple[int, int]]]:
    """Every image PIL decodes (``ImageFile.load``) or allocates pixels for (``core.new``/``core.fill``),
    with its size, while the test runs."""
    seen: list[tuple[str, tuple[int, int]]] = []

    def spy(name, function, size_of):
        def wrapper(*args, **kwargs):
            seen.append((name, tuple(size_of(args))))
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        ImageFile.ImageFile, "load", spy("decode", ImageFile.ImageFile.load, lambda a: a[0].size)
    )
    for name in ("new", "fill"):
        monkeypatch.setattr(Image.core, name, spy(name, getattr(Image.core, name), lambda a: a[1]))
    return seen


def test_png_bomb_is_refused_without_decoding(pixel_work):
    load_image(encode(noise(), "PNG"))  # the spies see a real load: a decode and its pixels
    assert ("decode", (64, 48)) in pixel_work and ("new", (64, 48)) in pixel_work
    pixel_work.clear()
    data = png_claiming(20000, 20000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match=r"^image has 400,000,000 pixels; the limit is 40,000,000"):
            load_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pixel_work == []  # refused from the header: nothing decoded, not one pixel allocated
    assert peak < 50 * 1024 * 1024


@pytest.mark.parametrize("side", [8000, 10000])  # 10000² is above PIL's warning limit, 8000² is not
def test_header_size_above_our_limit(side, pixel_work):
    data = png_claiming(side, side)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not escape
            with pytest.raises(ImageLoadError) as caught:
                load_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (
        str(caught.value)
        == f"image is {side}×{side} px ({side * side:,} pixels); the limit is 40,000,000 pixels"
    )
    assert peak < 50 * 1024 * 1024 and pixel_work == []
    assert Image.MAX_IMAGE_PIXELS != MAX_PIXELS  # PIL's global limit is left alone


def test_custom_pixel_limit_applies_to_all_inputs():
    image = noise(100, 100)
    message = r"^image is 100×100 px \(10,000 pixels\); the limit is 5,000 pixels$"
    for source in (encode(image, "PNG"), image, np.asarray(image)):
        with pytest.raises(ImageLoadError, match=message):
            load_image(source, max_pixels=5000)


# --- frames and orientation --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF", "WEBP"])
def test_animated_or_multi_frame(fmt):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    with pytest.raises(ImageLoadError, match=f"^{MULTI_FRAME}$"):
        load_image(data)


def test_single_frame_gif_loads():
    out = pixels(load_image(encode(Image.new("RGB", (32, 32), (255, 0, 0)), "GIF")))
    assert (out == [255, 0, 0]).all()


def test_multi_picture_jpeg_gives_the_primary_picture():
    pictures = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    data = encode(pictures[0], "MPO", save_all=True, append_images=pictures[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = pixels(load_image(data)).astype(int)
    assert np.abs(out - [255, 0, 0]).max() < 10


def test_exif_orientation_6():
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall
    stored[:8, :8] = (255, 0, 0)  # red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90° clockwise
    data = encode(Image.fromarray(stored), "JPEG", exif=exif.tobytes(), quality=95)
    out = pixels(load_image(data))
    assert out.shape == (40, 20, 3)  # width and height swapped
    assert out[2:6, -6:-2, 0].min() > 200 and out[2:6, -6:-2, 1:].max() < 60  # top-right is red
    assert out[2:6, 2:6].max() < 60  # top-left is black


# --- colour modes ------------------------------------------------------------------------------------


def test_grayscale():
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (20, 1))
    out = pixels(load_image(encode(Image.fromarray(ramp), "PNG")))
    assert all(np.array_equal(out[..., c], ramp) for c in range(3))


def test_one_bit():
    bits = Image.new("1", (20, 20), 0)
    bits.paste(1, (0, 0, 10, 20))
    out = pixels(load_image(encode(bits, "PNG")))
    assert (out[:, :10] == 255).all() and (out[:, 10:] == 0).all()


def test_rgba_is_composited_on_white():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 0)  # transparent red
    rgba[:, 10:20] = (0, 0, 255, 255)  # opaque blue
    rgba[:, 20:] = (255, 0, 0, 128)  # half-transparent red
    out = pixels(load_image(encode(Image.fromarray(rgba), "PNG")))
    assert (out[:, :10] == 255).all()
    assert (out[:, 10:20] == [0, 0, 255]).all()
    assert np.abs(out[:, 20:].astype(int) - [255, 127, 127]).max() <= 1


def test_gray_with_alpha_is_composited_on_white():
    la = Image.new("LA", (20, 20), (0, 0))
    la.paste((0, 255), (0, 0, 10, 20))
    out = pixels(load_image(encode(la, "PNG")))
    assert (out[:, :10] == 0).all() and (out[:, 10:] == 255).all()


def test_16bit_png_is_min_max_scaled():
    rng = np.random.default_rng(1)
    values = rng.integers(1000, 3000, (24, 24), dtype=np.uint16)  # a narrow part of the 16-bit range
    decoded = Image.open(io.BytesIO(encode(Image.fromarray(values), "PNG")))
    assert decoded.mode.startswith("I")
    out = pixels(load_image(decoded))[..., 0].astype(int)
    assert out.min() == 0 and out.max() == 255
    order = np.argsort(values, axis=None, kind="stable")
    assert (np.diff(out.flat[order]) >= 0).all()  # brighter in, never darker out


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F"])
def test_high_bit_modes(mode):
    values = np.linspace(500, 900, 32 * 32).reshape(32, 32)
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    image = Image.frombytes(mode, (32, 32), values.astype(dtype).tobytes())
    out = pixels(load_image(image))[..., 0]
    assert out[0, 0] == 0 and out[-1, -1] == 255
    assert (np.diff(out.astype(int).flat) >= 0).all()


def test_palette_and_palette_transparency():
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    palette.paste(1, (10, 0, 20, 20))
    out = pixels(load_image(encode(palette, "PNG")))
    assert (out[:, :10] == [10, 20, 30]).all() and (out[:, 10:] == [200, 100, 0]).all()
    out = pixels(load_image(encode(palette, "PNG", transparency=1)))
    assert (out[:, :10] == [10, 20, 30]).all() and (out[:, 10:] == 255).all()


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (32, 32), (255, 0, 0, 0))  # cyan
    cmyk.paste((0, 0, 0, 255), (16, 0, 32, 32))  # black
    decoded = Image.open(io.BytesIO(encode(cmyk, "JPEG", quality=95)))
    assert decoded.mode == "CMYK"
    out = pixels(load_image(decoded)).astype(int)
    assert np.abs(out[4:28, 2:12] - [0, 255, 255]).max() < 20
    assert out[4:28, 20:30].max() < 20


def test_pil_input_is_not_modified():
    source = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    out = load_image(source)
    assert source.mode == "RGBA" and source.getpixel((0, 0)) == (255, 0, 0, 0)
    assert out is not source and out.getpixel((0, 0)) == (255, 255, 255)
    rgb = Image.new("RGB", (20, 20))
    assert load_image(rgb) is not rgb


def test_tiny_image():
    with pytest.raises(ImageLoadError, match=r"^image is 10×40 px; at least 16×16 is needed$"):
        load_image(encode(Image.new("RGB", (10, 40)), "PNG"))
    assert load_image(Image.new("L", (16, 16))).size == (16, 16)


def test_unsupported_source_type():
    with pytest.raises(ImageLoadError, match="^cannot load an image from a int$"):
        load_image(42)


# --- numpy arrays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1), (20, 30, 3), (20, 30, 4)])
def test_array_shapes(shape):
    array = np.full(shape, 200, np.uint8)
    if shape[-1] == 4:
        array[..., 3] = 255  # opaque
    out = pixels(load_image(array))
    assert out.shape == (20, 30, 3)
    assert (out == 200).all()


def test_uint16_array_is_min_max_scaled():
    array = np.linspace(100, 400, 20 * 20).reshape(20, 20).astype(np.uint16)
    out = pixels(load_image(array))[..., 0]
    assert out[0, 0] == 0 and out[-1, -1] == 255 and (np.diff(out.astype(int).flat) >= 0).all()


def test_float_arrays():
    unit = np.linspace(0, 1, 20 * 20).reshape(20, 20)
    assert np.array_equal(pixels(load_image(unit))[..., 0], np.rint(unit * 255).astype(np.uint8))
    half = np.full((20, 20, 3), 0.5, np.float32)
    assert (pixels(load_image(half)) == 128).all()  # in [0, 1]: scaled by 255, not stretched
    hounsfield = np.linspace(-1000, 3000, 20 * 20).reshape(20, 20)
    out = pixels(load_image(hounsfield))[..., 0]
    assert out[0, 0] == 0 and out[-1, -1] == 255 and out[10, 0] in (127, 128)


def test_rgba_float_array_on_white():
    array = np.zeros((20, 20, 4), np.float32)
    array[:, 10:] = (0, 0, 1, 1)
    out = pixels(load_image(array))
    assert (out[:, :10] == 255).all() and (out[:, 10:] == [0, 0, 255]).all()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            np.zeros((2, 20, 20, 3), np.uint8),
            "expected an array of shape H×W, H×W×1, H×W×3 or H×W×4; got shape",
        ),
        (np.zeros((20, 20, 2), np.uint8), r"H×W×4; got shape \(20, 20, 2\)"),
        (np.zeros((0, 20), np.uint8), r"H×W×4; got shape \(0, 20\)"),
        (np.zeros(20, np.uint8), r"H×W×4; got shape \(20,\)"),
        (np.zeros((20, 20), np.int64), "^expected an array of dtype uint8, uint16 or float; got int64$"),
        (np.zeros((20, 20), bool), "^expected an array of dtype uint8, uint16 or float; got bool$"),
        (np.full((20, 20), np.nan), "^the image contains NaN or infinite values$"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(ImageLoadError, match=message):
        load_image(array)


# --- DICOM -------------------------------------------------------------------------------------------


def dicom_bytes(
    pixel_array: np.ndarray | None,
    syntax=ExplicitVRLittleEndian,
    frames: list[bytes] | None = None,
    **elements,
) -> bytes:
    """A Secondary Capture DICOM file holding `pixel_array` (H×W, frames×H×W or H×W×3) and `elements`.

    With `frames`, the pixel data are those compressed frames, encapsulated.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset("test.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    if pixel_array is not None:
        colour = elements.get("SamplesPerPixel", 1) == 3
        bits = pixel_array.dtype.itemsize * 8
        ds.Rows, ds.Columns = pixel_array.shape[-3:-1] if colour else pixel_array.shape[-2:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        ds.PixelData = pixel_array.tobytes()
        if frames is not None:
            ds.PixelData = encapsulate(frames)
            ds["PixelData"].VR = "OB"
    for key, value in elements.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(buffer, write_like_original=False)
    return buffer.getvalue()


def test_dicom_rescale_and_window():
    stored = np.full((16, 16), 100, np.uint16)
    stored[0, :6] = [0, 50, 75, 100, 150, 200]  # rescaled: -100, 0, 50, 100, 200, 300
    # Window 100.5/201 is linear from 0 (black) to 200 (white) on rescaled values.
    data = dicom_bytes(stored, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100.5, WindowWidth=201)
    assert is_dicom(data)
    out = pixels(load_image(data))
    assert out.shape == (16, 16, 3)
    assert list(out[0, :6, 0]) == [0, 0, 64, 128, 255, 255]
    assert (out[1:] == 128).all()
    # Multi-valued window: the first pair is used.
    data = dicom_bytes(
        stored, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=[100.5, 5000], WindowWidth=[201, 10]
    )
    assert list(pixels(load_dicom(data))[0, :6, 0]) == [0, 0, 64, 128, 255, 255]


def test_dicom_voi_lut():
    from pydicom.dataset import Dataset

    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 8]  # 4 entries, first input value 0, 8-bit output
    lut.LUTData = np.array([0, 10, 200, 255], "<u2").tobytes()
    lut["LUTData"].VR = "OW"
    stored = np.zeros((16, 16), np.uint16)
    stored[0, :5] = [0, 1, 2, 3, 4]  # rescaled: 0, 2, 4, 6, 8
    data = dicom_bytes(
        stored, VOILUTSequence=[lut], RescaleSlope=2, RescaleIntercept=0, WindowCenter=1, WindowWidth=2
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = pixels(load_image(data))[0, :5, 0]
    assert list(out) == [0, 200, 255, 255, 255]  # the LUT wins over the window; beyond its end: last entry


def test_dicom_without_window_is_min_max_scaled():
    stored = np.linspace(1000, 1400, 16 * 16).reshape(16, 16).astype(np.uint16)
    out = pixels(load_image(dicom_bytes(stored)))[..., 0]
    assert out[0, 0] == 0 and out[-1, -1] == 255


def test_dicom_monochrome1_is_inverted():
    stored = np.tile(np.arange(16, dtype=np.uint8) * 10, (16, 1))
    out = pixels(load_image(dicom_bytes(stored, PhotometricInterpretation="MONOCHROME1")))[..., 0]
    assert out[0, 0] == 255 and out[0, -1] == 0  # lowest value white, highest black
    assert (np.diff(out[0].astype(int)) < 0).all()


@pytest.mark.parametrize("planar", [0, 1])
def test_dicom_rgb(planar):
    rgb = np.zeros((16, 20, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)
    rgb[:, 10:] = (20, 200, 90)
    stored = rgb if planar == 0 else rgb.transpose(2, 0, 1)  # planar: all R, then all G, then all B
    data = dicom_bytes(
        rgb, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=planar
    ).replace(rgb.tobytes(), stored.tobytes())
    assert np.array_equal(pixels(load_image(data)), rgb)


def test_dicom_ybr_is_converted_to_rgb():
    try:
        from pydicom.pixels import convert_color_space
    except ImportError:  # pydicom 2
        from pydicom.pixel_data_handlers.util import convert_color_space

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 30)
    rgb[:, 8:] = (30, 30, 200)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    data = dicom_bytes(ybr, SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL", PlanarConfiguration=0)
    assert np.abs(pixels(load_image(data)).astype(int) - rgb).max() <= 2


def test_dicom_multi_frame_gives_first_frame():
    frames = np.stack([np.full((16, 16), 10, np.uint8), np.full((16, 16), 250, np.uint8)])
    frames[0, :, 8:] = 90
    out = pixels(load_image(dicom_bytes(frames, NumberOfFrames=2)))[..., 0]
    assert (out[:, :8] == 0).all() and (out[:, 8:] == 255).all()


def test_dicom_without_pixel_data():
    data = dicom_bytes(None)
    assert is_dicom(data)
    with pytest.raises(ImageLoadError, match="^the DICOM file has no pixel data$"):
        load_image(data)


def test_dicom_compressed_without_decoder():
    try:
        from pydicom.pixels import get_decoder

        available = get_decoder(JPEGLSLossless).is_available
    except ImportError:  # pydicom 2
        handlers = pydicom.config.pixel_data_handlers
        available = any(h.is_available() and h.supports_transfer_syntax(JPEGLSLossless) for h in handlers)
    if available:
        pytest.skip("a JPEG-LS decoder is installed")
    jpeg_ls_start = b"\xff\xd8\xff\xf7" + b"\0" * 40
    data = dicom_bytes(np.zeros((16, 16), np.uint8), syntax=JPEGLSLossless, frames=[jpeg_ls_start])
    message = (
        r"^the DICOM image is compressed as JPEG-LS Lossless Image Compression "
        r"\(1\.2\.840\.10008\.1\.2\.4\.80\), which no installed decoder can read; export it uncompressed$"
    )
    with pytest.raises(ImageLoadError, match=message):
        load_image(data)


def test_dicom_unknown_transfer_syntax():
    data = dicom_bytes(np.zeros((16, 16), np.uint8))
    data = data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.3.4.5.6.7.8.9.0\x00")  # same length, private UID
    message = "the DICOM file has an unknown transfer syntax (1.2.3.4.5.6.7.8.9.0); export it uncompressed"
    with pytest.raises(ImageLoadError, match=f"^{re.escape(message)}$"):
        load_image(data)


def test_dicom_header_size_checked_before_decoding():
    data = dicom_bytes(np.zeros((16, 16), np.uint8), Rows=10000, Columns=10000)
    with pytest.raises(ImageLoadError, match=r"^image is 10000×10000 px \(100,000,000 pixels\); the limit"):
        load_image(data)


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # pydicom, on the garbage
def test_dicom_corrupt_and_tiny():
    data = dicom_bytes(np.zeros((16, 16), np.uint16))
    with pytest.raises(ImageLoadError, match="^the DICOM pixel data is corrupt or truncated$"):
        load_image(data[:-100])
    explicit_vr = b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"  # (0002,0010) transfer syntax
    bad_vr = b"\x08\x00\x16\x00ZZ\x04\x00abcd"  # (0008,0016) with the non-existent VR "ZZ"
    with pytest.raises(ImageLoadError, match="^the DICOM file is corrupt or truncated$"):
        load_image(b"\0" * 128 + b"DICM" + explicit_vr + bad_vr)
    with pytest.raises(ImageLoadError, match="^the DICOM file has no pixel data$"):
        load_image(b"\0" * 128 + b"DICM" + b"\xff" * 50)  # pydicom skips what it cannot parse
    with pytest.raises(ImageLoadError, match=r"^image is 8×8 px; at least 16×16 is needed$"):
        load_image(dicom_bytes(np.zeros((8, 8), np.uint8)))


def test_is_dicom():
    assert not is_dicom(encode(noise(), "PNG"))
    assert not is_dicom(b"DICM")
    assert MAX_FILE_BYTES == 20 * 1024 * 1024 and MAX_PIXELS == 40_000_000


# --- robustness --------------------------------------------------------------------------------------


def test_damaged_files_give_an_image_or_a_load_error():
    """Random byte damage to every supported format never escapes as another exception type."""
    rng = np.random.default_rng(7)
    image = noise(40, 30)
    originals = [encode(image, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
    originals.append(
        dicom_bytes(np.arange(400, dtype=np.uint16).reshape(20, 20), WindowCenter=200, WindowWidth=300)
    )
    originals.append(
        dicom_bytes(
            np.asarray(image), SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0
        )
    )
    outcomes = {"image": 0, "error": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about what it repairs
        for original in originals:
            for _ in range(60):
                damaged = bytearray(original)
                for position in rng.integers(0, len(damaged), rng.integers(1, 8)):
                    damaged[position] = rng.integers(0, 256)
                if rng.random() < 0.3:
                    damaged = damaged[: rng.integers(1, len(damaged))]
                try:
                    pixels(load_image(bytes(damaged)))
                    outcomes["image"] += 1
                except ImageLoadError:
                    outcomes["error"] += 1
    assert outcomes["image"] > 0 and outcomes["error"] > 0
