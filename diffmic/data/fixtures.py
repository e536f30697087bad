"""Tiny datasets written in the exact on-disk formats of the real ones, filled with synthetic images.

For tests and for trying the app's Evaluate tab without downloading anything:

* ISIC 2018 Task 3 - ``ISIC2018_Task3_Training_GroundTruth.csv`` (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC,
  one-hot "0.0"/"1.0") and ``ISIC2018_Task3_Training_Input/ISIC_<7 digits>.jpg``, from the synthetic
  ``derm`` task (its NV, MEL, BCC, BKL fill those columns; AKIEC, DF and VASC stay all zero);
* APTOS 2019 - ``train.csv`` (id_code,diagnosis) and ``train_images/<12 hex digits>.png``, from ``fundus``;
* an image folder - one subfolder per class of ``<task>_<index>.png`` (``placenta`` by default).

Each writer takes the dataset folder to create and returns it; ``read_dataset`` recognises all three.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from PIL import Image

from .readers import ISIC2018_COLUMNS
from .synthetic import generate_sample, get_task

ISIC_CSV_NAME = "ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_IMAGE_DIR = "ISIC2018_Task3_Training_Input"
ISIC_FIRST_ID = 24306  # the first image id of the real training set
APTOS_CSV_NAME = "train.csv"
APTOS_IMAGE_DIR = "train_images"


def _balanced(task: str, n_per_class: int, size: int, seed: int):
    """Samples 0..n_per_class*C-1 of a task: exactly n_per_class of each class."""
    k = get_task(task).num_classes
    return [generate_sample(task, i, seed, size) for i in range(n_per_class * k)]


def write_isic2018_fixture(root: str | Path, n_per_class: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write a small ISIC 2018 Task 3 training set (synthetic dermoscopy) under root; returns root."""
    root = Path(root)
    image_dir = root / ISIC_IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    names = get_task("derm").class_names
    rows = []
    for i, sample in enumerate(_balanced("derm", n_per_class, size, seed)):
        image_id = f"ISIC_{ISIC_FIRST_ID + i:07d}"
        Image.fromarray(sample.image).save(image_dir / f"{image_id}.jpg", quality=95)
        column = names[sample.label]
        rows.append([image_id, *("1.0" if c == column else "0.0" for c in ISIC2018_COLUMNS)])
    with (root / ISIC_CSV_NAME).open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["image", *ISIC2018_COLUMNS])
        writer.writerows(rows)
    return root


def aptos_id(seed: int, index: int) -> str:
    """A 12-hex-digit APTOS-style id_code, fixed by (seed, index)."""
    return hashlib.sha1(f"aptos-{seed}-{index}".encode()).hexdigest()[:12]


def write_aptos2019_fixture(root: str | Path, n_per_class: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write a small APTOS 2019 training set (synthetic fundus photos) under root; returns root."""
    root = Path(root)
    image_dir = root / APTOS_IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sample in enumerate(_balanced("fundus", n_per_class, size, seed)):
        id_code = aptos_id(seed, i)
        Image.fromarray(sample.image).save(image_dir / f"{id_code}.png")
        rows.append([id_code, sample.label])
    with (root / APTOS_CSV_NAME).open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id_code", "diagnosis"])
        writer.writerows(rows)
    return root


def class_folder_names(class_names: tuple[str, ...]) -> list[str]:
    """Folder names that sort in class order: the names themselves, or ``<i>_<name>`` when they would not."""
    names = list(class_names)
    if sorted(names) == names:
        return names
    width = len(str(len(names) - 1))
    return [f"{i:0{width}d}_{n}" for i, n in enumerate(names)]


def write_image_folder_fixture(
    root: str | Path, task: str = "placenta", n_per_class: int = 4, size: int = 64, seed: int = 0
) -> Path:
    """Write a folder-per-class dataset of a synthetic task under root; returns root."""
    root = Path(root)
    folders = class_folder_names(get_task(task).class_names)
    for name in folders:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(_balanced(task, n_per_class, size, seed)):
        Image.fromarray(sample.image).save(root / folders[sample.label] / f"{task}_{i:05d}.png")
    return root
