"""Tests of diffmic.data.archive: hostile zips are refused before anything is written."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from diffmic.data.archive import check_zip, extracted_zip, safe_extract_zip


def make_zip(path: Path, entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding ``entries`` (name → bytes), written with ZipInfo so any name is kept verbatim."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def assert_refused(zip_path: Path, dest: Path, message: str, **limits) -> None:
    with pytest.raises(ValueError, match=message):
        safe_extract_zip(zip_path, dest, **limits)
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be extracted from a refused zip"


def test_good_zip_is_extracted(tmp_path):
    z = make_zip(
        tmp_path / "ok.zip",
        {
            "data/a/1.png": b"one",
            "data/b/2.png": b"two",
            "__MACOSX/data/._1.png": b"x",
            "data/.DS_Store": b"x",
        },
    )
    out = safe_extract_zip(z, tmp_path / "out")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["data/a/1.png", "data/b/2.png"]
    assert (out / "data/a/1.png").read_bytes() == b"one"


@pytest.mark.parametrize(
    "name, message",
    [
        ("../evil.txt", r"outside"),
        ("data/../../evil.txt", r"outside"),
        ("/etc/evil.txt", r"absolute"),
        ("C:/evil.txt", r"absolute"),
        ("c:evil.txt", r"absolute"),
        ("data/D:evil.txt", r"drive letter"),
        ("..\\evil.txt", r"backslash"),
    ],
)
def test_path_traversal_is_refused(tmp_path, name, message):
    z = make_zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"pwned"})
    assert_refused(z, tmp_path / "out", message)
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        info = zipfile.ZipInfo("link")
        info.create_system = 3  # Unix
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert_refused(z, tmp_path / "out", "symbolic link")


def test_too_many_files(tmp_path):
    z = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(6)})
    assert_refused(z, tmp_path / "out", "6 files; the limit is 5", max_files=5)


def test_too_large_in_total(tmp_path):
    z = make_zip(tmp_path / "big.zip", {"a.bin": bytes(range(256)) * 40, "b.bin": bytes(range(256)) * 40})
    assert_refused(z, tmp_path / "out", "expands to", max_total_bytes=10_000)


def test_zip_bomb_ratio(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(4 * 1024 * 1024)})
    assert zipfile.ZipFile(z).getinfo("zeros.bin").compress_size < 40_000
    assert_refused(z, tmp_path / "out", "zip bomb")


def test_many_small_compressible_files_are_fine(tmp_path):
    z = make_zip(tmp_path / "csv.zip", {"labels.csv": b"image,label\n" + b"img_0001.png,0\n" * 2000})
    out = safe_extract_zip(z, tmp_path / "out")
    assert (out / "labels.csv").stat().st_size > 20_000


def test_not_a_zip(tmp_path):
    bad = tmp_path / "notes.zip"
    bad.write_text("hello, I am not a zip")
    assert_refused(bad, tmp_path / "out", "not a valid zip")


def test_empty_zip(tmp_path):
    z = make_zip(tmp_path / "empty.zip", {})
    assert_refused(z, tmp_path / "out", "no files")


def test_destination_must_be_empty(tmp_path):
    z = make_zip(tmp_path / "ok.zip", {"a.txt": b"a"})
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "existing.txt").write_text("keep me")
    with pytest.raises(ValueError, match="new or empty"):
        safe_extract_zip(z, dest)
    assert (dest / "existing.txt").read_text() == "keep me"


def test_file_and_folder_with_the_same_name(tmp_path):
    z = make_zip(tmp_path / "clash.zip", {"a": b"file", "a/b.txt": b"inside"})
    with pytest.raises(ValueError, match="cannot extract"):
        safe_extract_zip(z, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir()), "a failed extraction leaves the folder empty"


def test_check_zip_lists_files_without_extracting(tmp_path):
    z = make_zip(tmp_path / "ok.zip", {"d/": b"", "d/x.png": b"x"})
    with zipfile.ZipFile(z) as zf:
        assert [parts for _, parts in check_zip(zf)] == [("d", "x.png")]


def test_context_manager_cleans_up(tmp_path):
    z = make_zip(tmp_path / "ok.zip", {"a/1.txt": b"1"})
    with extracted_zip(z) as folder:
        assert (folder / "a/1.txt").read_text() == "1"
        parent = folder.parent
    assert not parent.exists()
    with pytest.raises(RuntimeError), extracted_zip(z) as folder:
        parent = folder.parent
        raise RuntimeError("boom")
    assert not parent.exists()
