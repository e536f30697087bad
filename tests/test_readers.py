"""Tests of the dataset readers, the on-disk fixtures and the stratified split (diffmic.data)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffmic.data.fixtures import (
    APTOS_CSV_NAME,
    APTOS_IMAGE_DIR,
    ISIC_CSV_NAME,
    ISIC_IMAGE_DIR,
    class_folder_names,
    write_aptos2019_fixture,
    write_image_folder_fixture,
    write_isic2018_fixture,
)
from diffmic.data.readers import (
    APTOS2019_CLASSES,
    ISIC2018_COLUMNS,
    read_aptos2019,
    read_dataset,
    read_image_folder,
    read_isic2018,
    stratified_split,
)

N = 3  # images per class in the fixtures
SIZE = 40


@pytest.fixture(scope="module")
def isic_root(tmp_path_factory) -> Path:
    return write_isic2018_fixture(tmp_path_factory.mktemp("isic"), N, SIZE, seed=0)


@pytest.fixture(scope="module")
def aptos_root(tmp_path_factory) -> Path:
    return write_aptos2019_fixture(tmp_path_factory.mktemp("aptos"), N, SIZE, seed=0)


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    return write_image_folder_fixture(tmp_path_factory.mktemp("folder"), "placenta", N, SIZE, seed=0)


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rewrite_csv(path: Path, edit) -> None:
    """Apply edit(rows) to the CSV rows (header included) in place."""
    rows = list(csv.reader(path.open()))
    edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


# ---- readers on the fixtures ----


def test_read_isic2018(isic_root):
    ds = read_isic2018(isic_root / ISIC_CSV_NAME, isic_root / ISIC_IMAGE_DIR)
    assert ds.class_names == list(ISIC2018_COLUMNS)
    assert len(ds) == 4 * N
    counts = dict(zip(ds.class_names, ds.class_counts(), strict=True))
    assert counts == {"MEL": N, "NV": N, "BCC": N, "AKIEC": 0, "BKL": N, "DF": 0, "VASC": 0}
    rows = list(csv.DictReader((isic_root / ISIC_CSV_NAME).open()))
    assert rows[0]["image"] == "ISIC_0024306"
    for rec, row in zip(ds.records, rows, strict=True):
        assert rec.path.name == row["image"] + ".jpg"
        assert {row[c] for c in ISIC2018_COLUMNS} == {"0.0", "1.0"}
        assert row[ds.class_names[rec.label]] == "1.0"
    with Image.open(ds.records[0].path) as im:
        assert im.format == "JPEG" and im.size == (SIZE, SIZE)


def test_read_aptos2019(aptos_root):
    ds = read_aptos2019(aptos_root / APTOS_CSV_NAME, aptos_root / APTOS_IMAGE_DIR)
    assert ds.class_names == ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
    assert ds.class_counts() == [N] * 5
    rows = list(csv.DictReader((aptos_root / APTOS_CSV_NAME).open()))
    assert list(rows[0]) == ["id_code", "diagnosis"]
    for rec, row in zip(ds.records, rows, strict=True):
        assert len(row["id_code"]) == 12 and int(row["id_code"], 16) >= 0
        assert rec.path == aptos_root / APTOS_IMAGE_DIR / f"{row['id_code']}.png"
        assert rec.label == int(row["diagnosis"])


def test_read_image_folder(folder_root):
    ds = read_image_folder(folder_root)
    assert ds.class_names == ["Grade 0", "Grade I", "Grade II", "Grade III"]
    assert ds.class_counts() == [N] * 4
    for rec in ds.records:
        assert rec.path.parent.name == ds.class_names[rec.label] and rec.path.suffix == ".png"
    sub = ds.subset([0, 5])
    assert sub.records == [ds.records[0], ds.records[5]] and sub.class_names == ds.class_names


def test_image_folder_filters_files(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name / "nested").mkdir(parents=True)
    for rel in ("a/x.PNG", "a/y.JpEg", "a/nested/z.dcm", "b/w.tif", "b/v.BMP", "b/u.tiff"):
        (tmp_path / rel).write_bytes(b"")
    for rel in ("a/.hidden.png", "a/notes.txt", "b/thumbs.db", ".cache/q.png"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "a" / ".git").mkdir()
    (tmp_path / "a" / ".git" / "h.png").write_bytes(b"")
    ds = read_image_folder(tmp_path)
    assert ds.class_names == ["a", "b"]  # sorted, hidden .cache ignored
    assert sorted(p.name for p in ds.paths) == ["u.tiff", "v.BMP", "w.tif", "x.PNG", "y.JpEg", "z.dcm"]
    assert ds.class_counts() == [3, 3]


def test_fixture_folder_names_keep_class_order(tmp_path):
    assert class_folder_names(("Grade 0", "Grade I", "Grade II", "Grade III"))[3] == "Grade III"
    root = write_image_folder_fixture(tmp_path, "fundus", 1, 32, seed=1)
    ds = read_image_folder(root)
    assert ds.class_names == ["0_No DR", "1_Mild", "2_Moderate", "3_Severe", "4_Proliferative DR"]
    assert ds.class_counts() == [1] * 5


def test_fixtures_are_deterministic(tmp_path):
    a = write_aptos2019_fixture(tmp_path / "a", 1, 32, seed=5)
    b = write_aptos2019_fixture(tmp_path / "b", 1, 32, seed=5)
    assert (a / APTOS_CSV_NAME).read_text() == (b / APTOS_CSV_NAME).read_text()
    for pa in sorted((a / APTOS_IMAGE_DIR).iterdir()):
        assert pa.read_bytes() == (b / APTOS_IMAGE_DIR / pa.name).read_bytes()


# ---- auto-detection ----


def test_read_dataset_detects_each_format(isic_root, aptos_root, folder_root):
    isic, aptos, folder = read_dataset(isic_root), read_dataset(aptos_root), read_dataset(folder_root)
    assert isic.class_names == list(ISIC2018_COLUMNS) and len(isic) == 4 * N
    assert isic.records == read_isic2018(isic_root / ISIC_CSV_NAME, isic_root / ISIC_IMAGE_DIR).records
    assert aptos.class_names == list(APTOS2019_CLASSES) and len(aptos) == 5 * N
    assert folder.class_names[0] == "Grade 0" and len(folder) == 4 * N
    assert read_dataset(isic_root / ISIC_CSV_NAME).records == isic.records  # the CSV path works too
    assert read_dataset(aptos_root / APTOS_CSV_NAME).records == aptos.records


def test_read_dataset_official_zip_layout(isic_root, tmp_path):
    """As unzipped from the challenge: the CSV in its own folder, images in another, any CSV name."""
    root = tmp_path / "isic"
    shutil.copytree(isic_root / ISIC_IMAGE_DIR, root / "images" / ISIC_IMAGE_DIR)
    (root / "gt").mkdir()
    shutil.copy(isic_root / ISIC_CSV_NAME, root / "gt" / "labels.csv")
    ds = read_dataset(root)
    assert len(ds) == 4 * N and ds.paths[0].parent == root / "images" / ISIC_IMAGE_DIR


def test_read_dataset_unrecognised(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        read_dataset(tmp_path / "nope")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="could not recognise a dataset"):
        read_dataset(tmp_path)
    with pytest.raises(ValueError, match="neither an ISIC 2018"):
        read_dataset(tmp_path / "notes.csv")


# ---- error messages ----


def test_missing_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="ISIC 2018 ground-truth CSV not found"):
        read_isic2018(tmp_path / "gt.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="APTOS 2019 CSV not found"):
        read_aptos2019(tmp_path / "train.csv", tmp_path)


def test_missing_columns(isic_root, aptos_root, tmp_path):
    root = copy(isic_root, tmp_path / "isic")
    rewrite_csv(root / ISIC_CSV_NAME, lambda rows: [r.pop() for r in rows])  # drop VASC
    with pytest.raises(ValueError, match="missing columns VASC"):
        read_isic2018(root / ISIC_CSV_NAME, root / ISIC_IMAGE_DIR)
    (tmp_path / "test.csv").write_text("id_code\nabc\n")
    with pytest.raises(ValueError, match="missing columns diagnosis"):
        read_aptos2019(tmp_path / "test.csv", aptos_root / APTOS_IMAGE_DIR)


def test_row_not_one_hot(isic_root, tmp_path):
    root = copy(isic_root, tmp_path / "isic")

    def two_hot(rows):
        rows[2][1:] = ["1.0", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"]

    rewrite_csv(root / ISIC_CSV_NAME, two_hot)
    with pytest.raises(ValueError, match=r"line 3 \(ISIC_0024307\) is not one-hot: MEL=1.0, NV=1.0"):
        read_isic2018(root / ISIC_CSV_NAME, root / ISIC_IMAGE_DIR)


def test_diagnosis_out_of_range(aptos_root, tmp_path):
    root = copy(aptos_root, tmp_path / "aptos")
    rewrite_csv(root / APTOS_CSV_NAME, lambda rows: rows[4].__setitem__(1, "7"))
    with pytest.raises(ValueError, match=r"line 5 .*diagnosis '7' is not an integer in 0\.\.4"):
        read_aptos2019(root / APTOS_CSV_NAME, root / APTOS_IMAGE_DIR)
    rewrite_csv(root / APTOS_CSV_NAME, lambda rows: rows[4].__setitem__(1, "mild"))
    with pytest.raises(ValueError, match="diagnosis 'mild'"):
        read_dataset(root)


def test_missing_image_files(isic_root, aptos_root, tmp_path):
    root = copy(isic_root, tmp_path / "isic")
    for p in sorted((root / ISIC_IMAGE_DIR).iterdir())[:7]:
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"7 of 12 images .* ISIC_0024306\.jpg, .*, \.\.\.") as err:
        read_isic2018(root / ISIC_CSV_NAME, root / ISIC_IMAGE_DIR)
    assert str(err.value).count(".jpg") == 5  # the first few only
    root = copy(aptos_root, tmp_path / "aptos")
    victim = sorted((root / APTOS_IMAGE_DIR).iterdir())[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"1 of 15 images .*{victim.name}"):
        read_dataset(root)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        read_aptos2019(root / APTOS_CSV_NAME, root / "elsewhere")


def test_empty_and_single_class_folders(tmp_path):
    with pytest.raises(ValueError, match="is empty: no class subfolders"):
        read_image_folder(tmp_path)
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="1 loose images"):
        read_image_folder(tmp_path)
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="at least 2 classes"):
        read_image_folder(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="class folders without image files .*: other"):
        read_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        read_image_folder(tmp_path / "missing")


# ---- stratified split ----


def test_stratified_split_properties():
    labels = np.repeat([0, 1, 2], [50, 30, 7])
    labels = np.random.default_rng(0).permutation(labels)
    fractions = (0.7, 0.15, 0.15)
    parts = stratified_split(labels, fractions, seed=1)
    assert len(parts) == 3
    joined = np.concatenate(parts)
    # disjoint and complete
    assert len(joined) == len(labels) and np.array_equal(np.sort(joined), np.arange(len(labels)))
    for part in parts:
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    for c in range(3):
        n_c = (labels == c).sum()
        for part, f in zip(parts, fractions, strict=True):
            assert abs((labels[part] == c).sum() - f * n_c) < 1  # per-class proportions, rounded
    again = stratified_split(list(labels), fractions, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = stratified_split(labels, fractions, seed=2)
    assert not np.array_equal(parts[0], other[0])


def test_stratified_split_edge_cases():
    parts = stratified_split([0, 0, 1, 1, 1], (0.5, 0.5), seed=0)
    assert sorted(len(p) for p in parts) == [2, 3] and set(np.concatenate(parts)) == set(range(5))
    whole = stratified_split([3, 1, 3], (1.0,), seed=0)
    assert whole[0].tolist() == [0, 1, 2]
    empty_part = stratified_split([0, 1, 0, 1], (1.0, 0.0), seed=0)
    assert empty_part[1].size == 0 and empty_part[0].size == 4
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split([0, 1], (0.5, 0.4), seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        stratified_split([0, 1], (1.5, -0.5), seed=0)
