"""Readers of real labelled medical-image datasets (ISIC 2018, APTOS 2019, a folder per class) and a
stratified train/validation/test split.

A reader only lists files and labels and checks that they exist; decoding images is left to the caller.
Every malformed input raises ``FileNotFoundError`` or ``ValueError`` with a message that says what is
wrong and where.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")
ISIC2018_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
APTOS2019_CLASSES = ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR")
SHOW_MISSING = 5  # how many missing files an error message names


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image file."""

    path: Path
    label: int


@dataclass
class LabelledFolder:
    """A labelled image dataset: its records and the names of its classes (index = label)."""

    records: list[ImageRecord]
    class_names: list[str]
    ordinal: bool = False  # graded labels (the reader knows: APTOS grades are, ISIC diagnoses are not)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        """All labels as an int64 array."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def paths(self) -> list[Path]:
        """All image paths."""
        return [r.path for r in self.records]

    def class_counts(self) -> list[int]:
        """Number of images per class."""
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()

    def subset(self, indices: Sequence[int]) -> LabelledFolder:
        """The records at ``indices`` (e.g. one part of a split), with the same class names."""
        return LabelledFolder([self.records[int(i)] for i in indices], list(self.class_names), self.ordinal)


def is_hidden(path: Path) -> bool:
    """Dot-files and macOS archive litter."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def is_image_file(path: Path) -> bool:
    """A visible file with one of the supported image extensions (any case)."""
    return path.is_file() and not is_hidden(path) and path.suffix.lower() in IMAGE_EXTENSIONS


def _read_csv(csv_path: str | Path, required: Sequence[str], what: str) -> tuple[Path, list[dict[str, str]]]:
    """Rows of a CSV file that must exist, have the required columns and at least one row."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{what} CSV not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(
                f"{csv_path.name} is missing columns {', '.join(missing)}; "
                f"expected {', '.join(required)}, found {', '.join(header) or 'no header'}"
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise ValueError(f"{csv_path.name} has a header but no rows")
    return csv_path, rows


def _resolve_images(image_dir: str | Path, names: Sequence[str], preferred: str, source: str) -> list[Path]:
    """Paths of ``<name><preferred>`` (or another image extension) in image_dir; lists any missing."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    by_stem: dict[str, Path] = {}
    for p in sorted(image_dir.iterdir()):
        if is_image_file(p) and (p.stem not in by_stem or p.suffix.lower() == preferred):
            by_stem[p.stem] = p
    missing = [n + preferred for n in names if n not in by_stem]
    if missing:
        shown = ", ".join(missing[:SHOW_MISSING]) + (", ..." if len(missing) > SHOW_MISSING else "")
        raise FileNotFoundError(
            f"{len(missing)} of {len(names)} images listed in {source} are missing from {image_dir}: {shown}"
        )
    return [by_stem[n] for n in names]


def read_isic2018(csv_path: str | Path, image_dir: str | Path) -> LabelledFolder:
    """ISIC 2018 Task 3: a one-hot ground-truth CSV (image, MEL..VASC) and ``image_dir/<image>.jpg``."""
    csv_path, rows = _read_csv(csv_path, ("image", *ISIC2018_COLUMNS), "ISIC 2018 ground-truth")
    names, labels = [], []
    for line, row in enumerate(rows, start=2):
        try:
            values = np.array([float(row[c]) for c in ISIC2018_COLUMNS])
        except ValueError as err:
            raise ValueError(f"{csv_path.name} line {line} ({row['image']}): not a number: {err}") from None
        if not (np.isin(values, (0.0, 1.0)).all() and values.sum() == 1):
            shown = ", ".join(f"{c}={row[c]}" for c in ISIC2018_COLUMNS)
            raise ValueError(f"{csv_path.name} line {line} ({row['image']}) is not one-hot: {shown}")
        names.append(row["image"])
        labels.append(int(values.argmax()))
    paths = _resolve_images(image_dir, names, ".jpg", csv_path.name)
    return LabelledFolder(
        [ImageRecord(p, y) for p, y in zip(paths, labels, strict=True)], list(ISIC2018_COLUMNS)
    )


def read_aptos2019(csv_path: str | Path, image_dir: str | Path) -> LabelledFolder:
    """APTOS 2019: ``train.csv`` with id_code, diagnosis (0-4) and ``image_dir/<id_code>.png``."""
    csv_path, rows = _read_csv(csv_path, ("id_code", "diagnosis"), "APTOS 2019")
    k = len(APTOS2019_CLASSES)
    names, labels = [], []
    for line, row in enumerate(rows, start=2):
        value = row["diagnosis"]
        try:
            grade = float(value)
        except ValueError:
            grade = float("nan")
        if not (grade.is_integer() and 0 <= grade < k):
            raise ValueError(
                f"{csv_path.name} line {line} ({row['id_code']}): "
                f"diagnosis {value!r} is not an integer in 0..{k - 1}"
            )
        names.append(row["id_code"])
        labels.append(int(grade))
    paths = _resolve_images(image_dir, names, ".png", csv_path.name)
    return LabelledFolder(
        [ImageRecord(p, y) for p, y in zip(paths, labels, strict=True)], list(APTOS2019_CLASSES), ordinal=True
    )


def read_image_folder(root: str | Path) -> LabelledFolder:
    """One subfolder per class (labels follow the sorted folder names); images anywhere inside each."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not is_hidden(p)), key=lambda p: p.name)
    if not class_dirs:
        loose = sum(is_image_file(p) for p in root.iterdir())
        hint = f" (it holds {loose} loose images: put them in one subfolder per class)" if loose else ""
        raise ValueError(f"{root} is empty: no class subfolders{hint}")
    records, empty = [], []
    for label, d in enumerate(class_dirs):
        files = sorted(
            p
            for p in d.rglob("*")
            if is_image_file(p) and not any(is_hidden(q) for q in p.relative_to(d).parents)
        )
        if not files:
            empty.append(d.name)
        records += [ImageRecord(p, label) for p in files]
    if empty:
        raise ValueError(
            f"class folders without image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}: {', '.join(empty)}"
        )
    if len(class_dirs) < 2:
        raise ValueError(
            f"{root} has only 1 class folder ({class_dirs[0].name}); at least 2 classes are needed"
        )
    return LabelledFolder(records, [d.name for d in class_dirs])


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError):
        return []


def _is_isic_csv(path: Path) -> bool:
    header = _csv_header(path)
    return "image" in header and all(c in header for c in ISIC2018_COLUMNS)


def _find_isic_images(root: Path, csv_path: Path) -> Path:
    """The folder (root, or a sub- or sub-sub-folder) that holds the CSV's first image."""
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        first = next(csv.DictReader(f), None)
    if first is None:
        raise ValueError(f"{csv_path.name} has a header but no rows")
    name = first["image"].strip()
    candidates = [root, *sorted(root.glob("*/")), *sorted(root.glob("*/*/"))]
    for d in candidates:
        if (
            d.is_dir()
            and not is_hidden(d)
            and any((d / (name + e)).is_file() for e in (".jpg", ".JPG", ".png"))
        ):
            return d
    raise FileNotFoundError(
        f"found {csv_path.name} but no folder under {root} holds its first image {name}.jpg"
    )


def read_dataset(path: str | Path) -> LabelledFolder:
    """Detect and read a dataset: ISIC 2018 (a CSV with MEL..VASC + images), APTOS 2019 (train.csv +
    train_images/), or a folder with one subfolder per class. ``path`` may also be the CSV itself."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        if _is_isic_csv(path):
            return read_isic2018(path, _find_isic_images(path.parent, path))
        if {"id_code", "diagnosis"} <= set(_csv_header(path)):
            return read_aptos2019(path, path.parent / "train_images")
        raise ValueError(f"{path.name} is neither an ISIC 2018 ground-truth CSV nor an APTOS 2019 train.csv")
    if not path.is_dir():
        raise FileNotFoundError(f"dataset not found: {path}")
    csvs = sorted(path.glob("*.csv")) + sorted(path.glob("*/*.csv"))
    for c in csvs:
        if not is_hidden(c) and _is_isic_csv(c):
            return read_isic2018(c, _find_isic_images(path, c))
    if (path / "train.csv").is_file() and (path / "train_images").is_dir():
        return read_aptos2019(path / "train.csv", path / "train_images")
    try:
        return read_image_folder(path)
    except ValueError as err:
        raise ValueError(
            f"could not recognise a dataset in {path}: no ISIC 2018 CSV "
            f"(columns image,{','.join(ISIC2018_COLUMNS)}), no APTOS 2019 train.csv + train_images/, "
            f"and as a folder per class: {err}"
        ) from None


def stratified_split(labels: Sequence[int], fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split indices 0..n-1 into len(fractions) disjoint parts covering all, each class divided in the
    given proportions (largest-remainder rounding, ties broken at random); sorted int64 index arrays."""
    labels = np.asarray(labels)
    f = np.asarray(fractions, dtype=float)
    if labels.ndim != 1:
        raise ValueError("labels must be a 1-D sequence")
    if len(f) == 0 or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in f]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        raw = f * len(idx)
        counts = np.floor(raw).astype(int)
        order = np.lexsort((rng.random(len(f)), -(raw - counts)))  # largest remainder first, random ties
        counts[order[: len(idx) - counts.sum()]] += 1
        for part, chunk in zip(parts, np.split(idx, np.cumsum(counts)[:-1]), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.empty(0, np.int64) for p in parts]
