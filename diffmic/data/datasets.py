"""Torch datasets over in-memory arrays (generated data) and image files (real datasets), and the splits.

Both yield ``(uint8 tensor (S, S, 3), label)``; normalisation and augmentation happen per batch in
the training loop, so a dataset is just pixels and labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..imageio import load_image
from ..transforms import resize_square


class ArrayDataset(Dataset):
    """Images already decoded and resized: uint8 (N, S, S, 3) + int labels (+ optional lesion masks)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, masks: np.ndarray | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.masks = images, np.asarray(labels, dtype=np.int64), masks

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.ascontiguousarray(self.images[i])), int(self.labels[i])


class FileDataset(Dataset):
    """Images read from disk (PNG/JPEG/DICOM…), made square (``square``: "crop" or "pad", a task's
    ``Preprocessing.square``) and resized on access."""

    def __init__(self, paths: list[Path], labels: list[int], size: int, square: str = "crop"):
        self.paths, self.labels, self.size = list(paths), np.asarray(labels, dtype=np.int64), size
        self.square = square

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels = resize_square(load_image(self.paths[i]), self.size, self.square)
        return torch.from_numpy(pixels), int(self.labels[i])


@dataclass
class Splits:
    """Train / validation / test datasets with the class names and whether the labels are ordinal."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]
    ordinal: bool


def cache_dir() -> Path:
    """Where generated datasets are cached (``DIFFMIC_CACHE`` or ~/.cache/diffmic)."""
    import os

    return Path(os.environ.get("DIFFMIC_CACHE", Path.home() / ".cache" / "diffmic"))


def synthetic_arrays(
    task: str, n: int, seed: int, size: int, start: int = 0, use_cache: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generated (images, labels, masks), cached on disk as .npz keyed by all the arguments."""
    from .synthetic import generate_dataset

    key = hashlib.sha1(f"{task}-{n}-{seed}-{size}-{start}-v1".encode()).hexdigest()[:12]
    path = cache_dir() / f"{task}-{n}-{size}-{key}.npz"
    if use_cache and path.is_file():
        with np.load(path) as data:
            return data["images"], data["labels"], data["masks"]
    images, labels, masks = generate_dataset(task, n, seed=seed, size=size, start=start)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, masks=masks)
        tmp.replace(path)
    return images, labels, masks


def batch_of(dataset: Dataset, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (B, S, S, 3) uint8 and labels (B,) for the given indices."""
    if isinstance(dataset, ArrayDataset):
        return torch.from_numpy(dataset.images[idx]), torch.from_numpy(dataset.labels[idx])
    if hasattr(dataset, "take"):  # a memory-mapped store (``shards.ShardDataset``)
        return dataset.take(idx)
    items = [dataset[int(i)] for i in idx]
    return torch.stack([p for p, _ in items]), torch.tensor([y for _, y in items])


# Index ranges of the generated data: training (train + validation) and held-out test never overlap.
SYNTHETIC_TEST_START = 10_000_000
# at most this many validation images: at data scale the rest of the range trains
VAL_MAX = 2000


def synthetic_splits(
    task: str,
    n_train: int,
    n_test: int,
    size: int,
    seed: int = 0,
    val_fraction: float = 0.15,
    *,
    val_max: int = VAL_MAX,
    workers: int | None = None,
) -> Splits:
    """Generated train/val (carved from the training range) and a test set from indices never trained on.

    The training range lives in a store of memory-mapped shards (``shards.write_store``, generated on first
    use on every core); the validation part, at most ``val_max`` images, is read into memory with its
    lesion masks. The split is a stratified one fixed by ``seed``."""
    from .readers import stratified_split
    from .shards import ShardDataset, store_dir, write_store
    from .synthetic import GENERATORS

    if n_train:
        folder = write_store(task, n_train, seed, size, store_dir(task, seed, size), workers=workers)
        store = ShardDataset(folder, n_train)
        fraction = min(val_fraction, val_max / n_train)
        tr, va = stratified_split(store.labels, (1 - fraction, fraction), seed)
        val_pixels, val_labels = store.take(va)
        train: Dataset = store.subset(tr)
        val = ArrayDataset(val_pixels.numpy(), val_labels.numpy(), store.masks(va))
    else:  # a test set only
        empty = np.empty((0, size, size, 3), np.uint8)
        train = val = ArrayDataset(empty, np.empty(0, np.int64), np.empty((0, size, size), bool))
    test = None
    if n_test:
        ti, tl, tm = synthetic_arrays(task, n_test, seed, size, start=SYNTHETIC_TEST_START)
        test = ArrayDataset(ti, tl, tm)
    spec = GENERATORS[task]
    return Splits(train, val, test, list(spec.class_names), spec.ordinal)


def folder_splits(
    path: str | Path,
    size: int,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    ordinal: bool | None = None,
    square: str = "crop",
) -> Splits:
    """Read an ISIC2018 / APTOS2019 / image-folder dataset and split it stratified with a fixed seed.

    Whether the labels are ordinal comes from the reader (APTOS grades are) unless ``ordinal`` says;
    ``square`` is how the images are made square (the task's ``Preprocessing.square``)."""
    from .readers import read_dataset, stratified_split

    folder = read_dataset(path)
    paths = [r.path for r in folder.records]
    labels = [r.label for r in folder.records]
    parts = stratified_split(labels, fractions, seed)

    def subset(idx: np.ndarray) -> FileDataset:
        return FileDataset([paths[i] for i in idx], [labels[i] for i in idx], size, square)

    is_ordinal = folder.ordinal if ordinal is None else ordinal
    test = subset(parts[2]) if len(parts) > 2 and len(parts[2]) else None
    return Splits(subset(parts[0]), subset(parts[1]), test, folder.class_names, is_ordinal)
