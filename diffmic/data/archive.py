"""Safe extraction of user-uploaded zip archives (datasets for evaluation).

Every entry is checked before a single byte is written, and any of the following refuses the whole
archive with a ``ValueError`` whose message says what is wrong:

- a name with ``..``, an absolute path, a drive letter (``C:``), a backslash path or a NUL byte;
- a symbolic-link entry (Unix mode in ``external_attr``) or an encrypted entry;
- more than ``max_files`` files, or more than ``max_total_bytes`` once uncompressed;
- a suspicious compression ratio (a zip bomb): above ``max_ratio`` for any entry, or for the archive as a
  whole, once the uncompressed size exceeds ``RATIO_FLOOR_BYTES`` (tiny text files compress very well).

Files go only into an empty (or new) folder, written with exclusive creation, and the bytes actually
written are counted again while extracting. macOS metadata (``__MACOSX/``, ``.DS_Store``) is skipped.
``extracted_zip`` wraps it all in a temporary folder that is removed afterwards::

    with extracted_zip(upload) as folder:
        dataset = read_dataset(folder)
"""

from __future__ import annotations

import lzma
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

MAX_FILES = 5000
MAX_TOTAL_BYTES = 500 * 1024 * 1024
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024  # below this uncompressed size, a high ratio cannot hurt
_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_SKIPPED = ("__MACOSX", ".DS_Store")


def _megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path components of one entry name, or ValueError if it could escape the target folder."""
    if "\x00" in name:
        raise ValueError(f"refusing the zip: entry {name!r} has a NUL byte in its name")
    if "\\" in name:
        raise ValueError(f"refusing the zip: entry {name!r} uses backslashes (a Windows path)")
    if name.startswith("/") or _DRIVE.match(name):
        raise ValueError(f"refusing the zip: entry {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise ValueError(f"refusing the zip: entry {name!r} points outside the archive folder ('..')")
    if any(_DRIVE.match(p) for p in parts):
        raise ValueError(f"refusing the zip: entry {name!r} has a drive letter")
    return parts


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _is_skipped(parts: tuple[str, ...]) -> bool:
    return any(p in _SKIPPED for p in parts)


def check_zip(
    zf: zipfile.ZipFile,
    *,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Check every entry of an open archive; return the (entry, path parts) of the files to extract."""
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: set[tuple[str, ...]] = set()
    total = compressed = 0
    for info in zf.infolist():
        parts = _safe_parts(info.filename)
        if _is_symlink(info):
            raise ValueError(f"refusing the zip: entry {info.filename!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise ValueError(f"refusing the zip: entry {info.filename!r} is encrypted")
        if not parts or info.is_dir() or _is_skipped(parts):  # is_dir() fails on an empty name
            continue
        if parts in seen:
            raise ValueError(f"refusing the zip: entry {info.filename!r} appears twice")
        seen.add(parts)
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ValueError(
                f"refusing the zip: entry {info.filename!r} expands {ratio:.0f}x "
                f"(limit {max_ratio:g}x), which looks like a zip bomb"
            )
        files.append((info, parts))
        total += info.file_size
        compressed += info.compress_size
    if len(files) > max_files:
        raise ValueError(f"refusing the zip: it holds {len(files)} files; the limit is {max_files}")
    if total > max_total_bytes:
        raise ValueError(
            f"refusing the zip: it expands to {_megabytes(total)}; the limit is {_megabytes(max_total_bytes)}"
        )
    if total > RATIO_FLOOR_BYTES and total > max_ratio * max(compressed, 1):
        raise ValueError(
            f"refusing the zip: it expands {total / max(compressed, 1):.0f}x (limit {max_ratio:g}x), "
            "which looks like a zip bomb"
        )
    if not files:
        raise ValueError("the zip holds no files")
    return files


def safe_extract_zip(
    zip_path: str | Path,
    dest_dir: str | Path,
    *,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Check the whole archive, then extract it into ``dest_dir`` (new or empty); returns ``dest_dir``."""
    dest = Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"refusing to extract into {dest}: it must be a new or empty folder")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as err:
        raise ValueError(f"not a valid zip file ({err})") from err
    except OSError as err:
        raise ValueError(f"cannot read the zip file: {err}") from err
    with zf:
        files = check_zip(zf, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _extract(zf, files, dest.resolve(), max_total_bytes)
        except BaseException:
            _empty(dest)  # the folder was empty before: leave nothing half-extracted behind
            raise
    return dest


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _extract(
    zf: zipfile.ZipFile, files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], root: Path, limit: int
) -> None:
    """Write the checked entries under ``root``, counting the bytes actually decompressed."""
    written = 0
    for info, parts in files:
        target = root.joinpath(*parts)
        if not target.resolve().is_relative_to(root):  # belt and braces after _safe_parts
            raise ValueError(f"refusing the zip: entry {info.filename!r} points outside the folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise ValueError("refusing the zip: it expands beyond its declared size")
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error, lzma.LZMAError) as err:
            raise ValueError(f"the zip is corrupt: entry {info.filename!r} ({err})") from err
        except NotImplementedError as err:
            raise ValueError(f"entry {info.filename!r} uses an unsupported compression method") from err
        except OSError as err:
            raise ValueError(f"cannot extract entry {info.filename!r}: {err.strerror or err}") from err


@contextmanager
def extracted_zip(zip_path: str | Path, **limits: float) -> Iterator[Path]:
    """Extract into a fresh temporary folder, yield it, and remove it afterwards (even on errors)."""
    tmp = Path(tempfile.mkdtemp(prefix="diffmic-zip-"))
    try:
        yield safe_extract_zip(zip_path, tmp / "data", **limits)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
