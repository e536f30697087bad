"""Coverage-guided fuzzing of the upload path with atheris (libFuzzer for Python).

Every input goes where an upload goes. Bytes that start like a zip go through the Evaluate tab's path:
``diffmic.data.archive.extracted_zip``, ``diffmic.data.readers.read_dataset`` and ``load_image`` on every
extracted file. Anything else goes through the Diagnose tab's: ``diffmic.imageio.load_image`` (PNG, JPEG,
BMP, TIFF, WebP, GIF, DICOM) and, for a DICOM, ``diffmic.dicom.read_dicom_info`` (the line under the preview).

An input passes when each call ends in its result (an RGB image of 16×16 px up to the pixel limit, or the
metadata) or in the error its module defines: ``ImageLoadError`` for images; ``ValueError`` (and
``FileNotFoundError`` from the dataset readers) for zips. It fails on any other exception, on taking more
than ``DEADLINE_S`` of CPU time (a busy machine's waits are not the input's; libFuzzer ends an input after
30 s of wall time), or on a peak traced allocation (Python objects and NumPy arrays, ``tracemalloc``)
above the upload limits' worth: ``BYTES_PER_LIMIT_PIXEL`` × max_pixels + 4 × its size + ``SLACK_BYTES``,
about what a legitimate image at the pixel limit needs. The fuzzer runs with small limits (``LIMITS``)
so that an input's worth is reached in a few kilobytes. Pillow's own pixel buffers are not traced; the
largest resident size is printed as a check on them.

A failing input is saved (``--crashes``, with its traceback) and fuzzing goes on; each one belongs in
``tests/fixtures/fuzz/regressions/`` (``tests/test_fuzz.py`` runs every file there). Seeds: the files of
``tests/fixtures/fuzz/seeds`` (``--write-seeds`` makes them: the bundled example images at 48 px, small
PNG/JPEG/GIF/BMP/TIFF/WebP variants, DICOMs, zips), pydicom's own test files up to ``MAX_SEED`` bytes and
the regressions.

    python benchmarks/fuzz.py --runs 100000          # until 100,000 executions
    python benchmarks/fuzz.py --seconds 600 --json   # or for a time; prints executions, exec/s, crashes
    python benchmarks/fuzz.py --write-seeds          # regenerate tests/fixtures/fuzz/seeds
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
import warnings
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "fuzz"
SEEDS, REGRESSIONS = FIXTURES / "seeds", FIXTURES / "regressions"
LIMITS = {"max_bytes": 1024 * 1024, "max_pixels": 1024 * 1024}  # the fuzzer's upload limits
ZIP_LIMITS = {"max_files": 64, "max_total_bytes": 4 * 1024 * 1024}
MAX_LEN = 16384  # the largest input libFuzzer makes (longer seeds are cut)
MAX_SEED = 65536  # the largest of pydicom's test files used as a seed
DEADLINE_S = 2.0
BYTES_PER_LIMIT_PIXEL = 32
SLACK_BYTES = 16 * 1024 * 1024
MAX_EXTRACTED = 16  # images loaded from one zip
# the modules whose Python code is instrumented for coverage (Pillow's plugins are imported by Image.init)
INSTRUMENTED = (
    "diffmic.imageio",
    "diffmic.rgb_conversion",
    "diffmic.dicom",
    "diffmic.dicom_parse",
    "diffmic.dicom_values",
    "diffmic.dicom_frame",
    "diffmic.dicom_display",
    "diffmic.data.archive",
    "diffmic.data.readers",
    "zipfile",
)


class FuzzFailure(Exception):
    """An input broke the upload path's contract: ``kind`` is exception, hang, memory or contract."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def memory_budget(size: int) -> int:
    """The most one input of `size` bytes may allocate (traced) under ``LIMITS``."""
    return BYTES_PER_LIMIT_PIXEL * LIMITS["max_pixels"] + 4 * size + SLACK_BYTES


def _is_zip(data: bytes) -> bool:
    return data[:2] == b"PK"


def _check_image(image, what: str) -> None:
    from PIL import Image

    if not isinstance(image, Image.Image) or image.mode != "RGB":
        raise FuzzFailure("contract", f"{what} gave {image!r}, not an RGB image")
    width, height = image.size
    if min(width, height) < 16 or width * height > LIMITS["max_pixels"]:
        raise FuzzFailure("contract", f"{what} gave a {width}×{height} image")


def _image_path(data: bytes) -> str:
    """An upload's bytes through load_image and, for a DICOM, the preview's metadata line."""
    from diffmic.dicom import DicomInfo, read_dicom_info
    from diffmic.imageio import ImageLoadError, is_dicom, load_image

    try:
        _check_image(load_image(data, **LIMITS), "load_image")
        outcome = "image"
    except ImageLoadError:
        outcome = "refused"
    if is_dicom(data):
        try:
            info = read_dicom_info(data, max_bytes=LIMITS["max_bytes"])
            if not isinstance(info, DicomInfo) or not isinstance(info.describe(), str):
                raise FuzzFailure("contract", f"read_dicom_info gave {info!r}")
        except ImageLoadError:
            pass
    return outcome


def _zip_path(data: bytes) -> str:
    """A zip upload the Evaluate tab's way: checked and extracted, read as a dataset, its images loaded."""
    from diffmic.data.archive import extracted_zip
    from diffmic.data.readers import read_dataset
    from diffmic.imageio import ImageLoadError, load_image

    with tempfile.TemporaryDirectory(prefix="diffmic-fuzz-") as tmp:
        upload = Path(tmp) / "upload.zip"
        upload.write_bytes(data)
        try:
            with extracted_zip(upload, **ZIP_LIMITS) as folder:
                try:
                    read_dataset(folder)
                except (ValueError, FileNotFoundError):
                    pass
                files = sorted(p for p in folder.rglob("*") if p.is_file())[:MAX_EXTRACTED]
                for path in files:
                    try:
                        _check_image(load_image(path, **LIMITS), f"load_image({path.name})")
                    except ImageLoadError:
                        pass
        except ValueError:  # ImageLoadError is one too, but the loads above caught theirs
            return "zip refused"
    return "zip"


def check_one(data: bytes, deadline_s: float | None = DEADLINE_S) -> str:
    """Run one input through the upload path; its outcome, or FuzzFailure when it breaks the contract
    (a `deadline_s` of None checks no time: the tests assert no speed, the fuzzer does)."""
    traced = tracemalloc.is_tracing()
    if traced:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
    start = time.process_time()  # CPU time: a busy machine's waits are no hang
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom and Pillow warn about what they repair
            outcome = _zip_path(data) if _is_zip(data) else _image_path(data)
    except FuzzFailure:
        raise
    except Exception as exc:
        raise FuzzFailure("exception", "".join(traceback.format_exception(exc))) from exc
    seconds = time.process_time() - start
    if deadline_s is not None and seconds > deadline_s:
        raise FuzzFailure("hang", f"{seconds:.2f} s of CPU (deadline {deadline_s} s)")
    if traced:
        peak = tracemalloc.get_traced_memory()[1] - before
        if peak > memory_budget(len(data)):
            raise FuzzFailure(
                "memory", f"{peak / 2**20:.1f} MiB traced (budget {memory_budget(len(data)) / 2**20:.1f})"
            )
    return outcome


@functools.cache
def warm_up() -> None:
    """Run our seeds once untraced, so that lazy imports (pydicom's decoders, Pillow's plugins and what
    they import) are not counted against the first inputs' time and memory."""
    for path in sorted(SEEDS.glob("*")):
        check_one(path.read_bytes(), deadline_s=None)


# --- seeds ---------------------------------------------------------------------------------------------


def _encode(image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _zip(files: dict[str, bytes], **options) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in files.items():
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if options.get("symlink") == name:
                info.external_attr = 0o120777 << 16
            zf.writestr(info, body)
    return buffer.getvalue()


def make_seeds() -> dict[str, bytes]:
    """Small, real inputs of every kind the upload path reads (deterministic)."""
    import numpy as np
    import pydicom
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from tests.test_imageio import dicom_bytes

    seeds: dict[str, bytes] = {}
    for path in sorted((ROOT / "assets").glob("*/*.png")):
        small = Image.open(path).convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)
        seeds[f"asset_{path.stem}.png"] = _encode(small, "PNG", optimize=True)
        seeds[f"asset_{path.stem}.jpg"] = _encode(small, "JPEG", quality=80)
    for path in sorted((ROOT / "assets").glob("*/*.dcm")):  # the example DICOM, its middle 48 × 48 px
        ds = pydicom.dcmread(path)
        top, left = ds.Rows // 2 - 24, ds.Columns // 2 - 24
        middle = ds.pixel_array[top : top + 48, left : left + 48]
        ds.Rows, ds.Columns = middle.shape[:2]
        ds.PixelData = np.ascontiguousarray(middle).tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        seeds[f"asset_{path.stem}.dcm"] = buffer.getvalue()
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    grey = rgb.convert("L")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated
    seeds |= {
        "grey.png": _encode(grey, "PNG"),
        "rgba.png": _encode(rgb.convert("RGBA"), "PNG"),
        "palette_transparent.png": _encode(rgb.convert("P"), "PNG", transparency=0),
        "one_bit.png": _encode(grey.convert("1"), "PNG"),
        "sixteen_bit.png": _encode(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), "PNG"),
        "progressive.jpg": _encode(rgb, "JPEG", progressive=True),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
        "exif_rotated.jpg": _encode(rgb, "JPEG", exif=exif),
        "grey.jpg": _encode(grey, "JPEG"),
        "image.gif": _encode(rgb.convert("P"), "GIF"),
        "animated.gif": _encode(grey, "GIF", save_all=True, append_images=[rgb.convert("L")]),
        "image.bmp": _encode(rgb, "BMP"),
        "image.tiff": _encode(rgb, "TIFF"),
        "deflate.tiff": _encode(grey, "TIFF", compression="tiff_adobe_deflate"),
        "image.webp": _encode(rgb, "WEBP", quality=50),
    }
    stored = (np.arange(32 * 24, dtype=np.uint16).reshape(24, 32) * 5) % 4096
    lut = _voi_lut_item()
    seeds |= {
        "ct_window.dcm": dicom_bytes(
            stored, Modality="CT", RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400
        ),
        "mr_multi_window.dcm": dicom_bytes(
            stored, Modality="MR", BodyPartExamined="HEAD", WindowCenter=[600, 300], WindowWidth=[1600, 200]
        ),
        "monochrome1_sigmoid.dcm": dicom_bytes(
            stored,
            PhotometricInterpretation="MONOCHROME1",
            WindowCenter=2000,
            WindowWidth=1000,
            VOILUTFunction="SIGMOID",
            PixelSpacing=[0.5, 0.5],
        ),
        "voi_lut.dcm": dicom_bytes(stored, VOILUTSequence=[lut]),
        "rgb.dcm": dicom_bytes(
            np.asarray(rgb), SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0
        ),
        "frames.dcm": dicom_bytes(np.stack([stored, stored[::-1]]), NumberOfFrames=2),
        "jpeg.dcm": dicom_bytes(
            np.zeros((24, 32), np.uint8),
            syntax="1.2.840.10008.1.2.4.50",
            frames=[_encode(grey, "JPEG")],
            BitsStored=8,
            HighBit=7,
        ),
        "deflated.dcm": dicom_bytes(
            stored, syntax="1.2.840.10008.1.2.1.99", WindowCenter=100, WindowWidth=50
        ),
    }
    png, jpg = seeds["grey.png"], seeds["grey.jpg"]
    seeds |= {
        "folders.zip": _zip(
            {"data/benign/a.png": png, "data/benign/b.jpg": jpg, "data/malignant/c.png": png}
        ),
        "isic.zip": _zip(
            {
                "GroundTruth.csv": b"image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,1,0,0,0,0,0,0\n",
                "images/ISIC_1.png": png,
            }
        ),
        "aptos.zip": _zip({"train.csv": b"id_code,diagnosis\nx1,2\n", "train_images/x1.png": png}),
        "dicom.zip": _zip(
            {"scans/a/ct.dcm": seeds["ct_window.dcm"], "scans/b/mr.dcm": seeds["mr_multi_window.dcm"]}
        ),
        "traversal.zip": _zip({"../evil.png": png}),
        "symlink.zip": _zip({"link.png": b"/etc/passwd"}, symlink="link.png"),
    }
    return seeds


def _voi_lut_item():
    import numpy as np
    from pydicom.dataset import Dataset

    item = Dataset()
    item.LUTDescriptor = [512, 0, 8]
    item.LUTData = (np.arange(512) // 2).astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    return item


def write_seeds(folder: Path = SEEDS) -> list[Path]:
    """Write :func:`make_seeds` to `folder` (its old files are replaced)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return [_write(folder / name, data) for name, data in make_seeds().items()]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def pydicom_test_files(max_len: int = MAX_SEED) -> list[Path]:
    """pydicom's own test DICOMs (installed with it) up to `max_len` bytes."""
    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return sorted(p for p in folder.glob("*.dcm") if p.stat().st_size <= max_len)


def corpus_files() -> list[Path]:
    """Every seed: ours, pydicom's and the regressions."""
    ours = sorted(SEEDS.glob("*")) if SEEDS.is_dir() else []
    regressions = (
        sorted(p for p in REGRESSIONS.glob("*") if p.suffix != ".txt") if REGRESSIONS.is_dir() else []
    )
    return ours + pydicom_test_files() + regressions


# --- the fuzzer ----------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    """The largest resident size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(argv: list[str], crashes: Path, stats_path: Path, trace_every: int = 1) -> None:
    """Run libFuzzer (atheris) over check_one; never returns. Failures are saved, counted and skipped.

    Allocations are traced for every `trace_every`-th input (tracing costs about 4 × the CPU); every input
    is also held to the budget on how much it raised the process's largest resident size, which Pillow's
    buffers count in (the level itself drifts up over a long run as the corpus grows)."""
    import atheris

    with atheris.instrument_imports(include=[*INSTRUMENTED, "PIL", "pydicom"]):
        from PIL import Image

        import diffmic.data.archive  # noqa: F401
        import diffmic.data.readers  # noqa: F401
        import diffmic.dicom  # noqa: F401
        import diffmic.imageio  # noqa: F401

        Image.init()  # imports every Pillow plugin now, so they are instrumented too
        warm_up()
    stats = {"executions": 0, "failures": 0, "kinds": {}, "outcomes": {}, "start": time.time()}
    stats["traced"] = 0
    crashes.mkdir(parents=True, exist_ok=True)

    def save_stats() -> None:
        stats["seconds"] = time.time() - stats["start"]
        stats["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stats_path.write_text(json.dumps(stats))

    def target(data: bytes) -> None:
        stats["executions"] += 1
        traced = stats["executions"] % trace_every == 0
        if traced:
            stats["traced"] += 1
            tracemalloc.start()
        rss_before = _rss_bytes()
        try:
            outcome = check_one(data)
            stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1
            grown = _rss_bytes() - rss_before  # a new high-water mark this input made
            if grown > memory_budget(len(data)):
                raise FuzzFailure("memory", f"the largest resident size grew by {grown / 2**20:.0f} MiB")
        except FuzzFailure as failure:
            stats["failures"] += 1
            stats["kinds"][failure.kind] = stats["kinds"].get(failure.kind, 0) + 1
            name = f"{failure.kind}-{hashlib.sha1(data).hexdigest()[:16]}"
            (crashes / name).write_bytes(data)
            (crashes / f"{name}.txt").write_text(failure.detail)
            save_stats()
        finally:
            if traced:
                tracemalloc.stop()
        if stats["executions"] % 100 == 0:
            save_stats()

    atheris.Setup(argv, target)
    atheris.Fuzz()


MAX_RESTARTS = 20  # libFuzzer stops at a timeout, a fatal signal or its memory limit: start it again


def run(
    runs: int | None,
    seconds: float | None,
    seed: int,
    crashes: Path,
    corpus_dir: Path | None = None,
    trace_every: int = 1,
    timeout_s: int = 30,
) -> dict:
    """Fuzz in child processes until `runs` executions or `seconds`; the counts reached.

    A failing input is saved by the worker and fuzzing goes on. When libFuzzer itself stops on an input (a
    hang past `timeout_s`, a fatal signal, its memory limit), that input goes to `crashes` too, counts as
    a crash, and a new worker goes on from the corpus grown so far."""
    crashes.mkdir(parents=True, exist_ok=True)
    totals = {"executions": 0, "traced": 0, "seconds": 0.0, "crashes": 0, "kinds": {}, "outcomes": {}}
    totals["max_rss_mb"] = 0.0
    with tempfile.TemporaryDirectory(prefix="diffmic-fuzz-corpus-") as tmp:
        corpus = corpus_dir or Path(tmp) / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        seeds = corpus_files()
        for i, path in enumerate(seeds):
            shutil.copyfile(path, corpus / f"seed{i:03d}_{path.name}")
        stats_path = Path(tmp) / "stats.json"
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
        for attempt in range(MAX_RESTARTS + 1):
            left_runs = runs - totals["executions"] if runs else None
            left_s = seconds - totals["seconds"] if seconds else None
            if (left_runs is not None and left_runs <= 0) or (left_s is not None and left_s < 1):
                break
            flags = [f"-seed={seed + attempt}", f"-max_len={MAX_LEN}", f"-timeout={timeout_s}"]
            flags += ["-rss_limit_mb=4096", f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
            flags += [f"-runs={left_runs}"] if left_runs else []
            flags += [f"-max_total_time={int(left_s)}"] if left_s else []
            stats_path.unlink(missing_ok=True)
            worker_args = ["--worker", str(crashes), str(stats_path), str(trace_every), *flags, str(corpus)]
            command = [sys.executable, __file__, *worker_args]
            start = time.perf_counter()
            child = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - start
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            done = re.search(r"Done (\d+) runs in", child.stderr)
            totals["executions"] += int(done.group(1)) if done else stats.get("executions", 0)
            totals["seconds"] += stats.get("seconds") or wall
            totals["crashes"] += stats.get("failures", 0)
            totals["traced"] += stats.get("traced", 0)
            for key in ("kinds", "outcomes"):
                for name, count in stats.get(key, {}).items():
                    totals[key][name] = totals[key].get(name, 0) + count
            totals["max_rss_mb"] = max(totals["max_rss_mb"], stats.get("max_rss_mb", 0))
            if done:
                break
            kind = _libfuzzer_stop(child.stderr)
            totals["crashes"] += 1
            totals["kinds"][kind] = totals["kinds"].get(kind, 0) + 1
            (crashes / f"libfuzzer-{kind}-{attempt}.txt").write_text(child.stderr[-5000:])
        executions, fuzz_s = totals["executions"], totals["seconds"]
        return {
            "executions": executions,
            "seconds": round(fuzz_s, 1),
            "exec_per_s": round(executions / max(fuzz_s, 1e-9), 1),
            "memory_traced": totals["traced"],
            "crashes": totals["crashes"],
            "crash_kinds": totals["kinds"],
            "outcomes": totals["outcomes"],
            "seeds": len(seeds),
            "corpus": len(list(corpus.glob("*"))),
            "workers": attempt + 1,
            "max_rss_mb": round(totals["max_rss_mb"], 1),
            "crash_dir": str(crashes),
        }


def _libfuzzer_stop(stderr: str) -> str:
    """Why libFuzzer stopped: timeout, out-of-memory, or a crash (a fatal signal, an uncaught error)."""
    if "libFuzzer: timeout" in stderr:
        return "timeout"
    if "out-of-memory" in stderr:
        return "out-of-memory"
    return "crash"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT))
        crashes, stats_path, trace_every = Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
        worker([sys.argv[0], *sys.argv[5:]], crashes, stats_path, trace_every)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="stop after this many executions")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's seed (deterministic runs)")
    parser.add_argument("--crashes", type=Path, help="where failing inputs go (default: a temporary folder)")
    parser.add_argument("--corpus", type=Path, help="a corpus folder kept between runs (default: temporary)")
    parser.add_argument("--trace-every", type=int, default=1, help="trace allocations of every N-th input")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--write-seeds", action="store_true", help=f"regenerate {SEEDS.relative_to(ROOT)}")
    args = parser.parse_args()
    if args.write_seeds:
        written = write_seeds()
        print(f"wrote {len(written)} seeds ({sum(p.stat().st_size for p in written):,} bytes) to {SEEDS}")
        return
    if not args.runs and not args.seconds:
        parser.error("give --runs or --seconds")
    crashes = args.crashes or Path(tempfile.mkdtemp(prefix="diffmic-fuzz-crashes-"))
    result = run(args.runs, args.seconds, args.seed, crashes, args.corpus, args.trace_every)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"executions {result['executions']:,} in {result['seconds']} s = {result['exec_per_s']:,} exec/s "
        f"({result['memory_traced']:,} with allocations traced); "
        f"crashes {result['crashes']} {result['crash_kinds'] or ''}; seeds {result['seeds']} -> corpus "
        f"{result['corpus']}; "
        f"outcomes {result['outcomes']}; max RSS {result['max_rss_mb']} MB; failing inputs in {crashes}"
    )


if __name__ == "__main__":
    main()
