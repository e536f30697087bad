"""Generated training data at scale: uint8 shards on disk, written in parallel, read memory-mapped.

A generated image is a pure function of (task, seed, index, size), so tens of thousands of them can be
made once and kept. A *store* is a folder of fixed-size shards; shard ``k`` holds the samples
``k * shard_size .. (k + 1) * shard_size - 1`` as three ``.npy`` files (images (n, S, S, 3) uint8, labels
(n,) int64, lesion masks (n, S * S / 8) bit-packed), the images file renamed into place last, so a shard
is complete exactly when its images file exists. Generation therefore resumes shard by shard, and a
larger store reuses the shards of a smaller one. Reading maps the images files (``np.load(mmap_mode="r")``):
30,000 images at 256 px are 5.9 GB of uint8 that the page cache holds, never as floats in memory.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

FORMAT_VERSION = 1
SHARD_SIZE = 1000
_MANIFEST = "manifest.json"


def store_dir(task: str, seed: int, size: int) -> Path:
    """The default store of a task's training range: under the generated-data cache (``DIFFMIC_CACHE``)."""
    from .datasets import cache_dir

    return cache_dir() / "shards" / f"{task}-seed{seed}-{size}px-v{FORMAT_VERSION}"


def _shard_paths(folder: Path, k: int) -> dict[str, Path]:
    return {name: folder / f"{name}-{k:05d}.npy" for name in ("labels", "masks", "images")}


def _write_shard(args: tuple[str, int, int, int, int, str]) -> int:
    """Generate and write one shard (runs in a worker process); returns its number."""
    from .synthetic import generate_dataset

    task, seed, size, k, count, folder = args
    images, labels, masks = generate_dataset(task, count, seed=seed, size=size, start=k * _shard_size(folder))
    arrays = {"labels": labels, "masks": np.packbits(masks.reshape(count, -1), axis=1), "images": images}
    for name, path in _shard_paths(Path(folder), k).items():  # images last: it marks the shard complete
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arrays[name])
        tmp.replace(path)
    return k


def _shard_size(folder: str | Path) -> int:
    return int(json.loads((Path(folder) / _MANIFEST).read_text())["shard_size"])


def _check_manifest(folder: Path, manifest: dict) -> None:
    path = folder / _MANIFEST
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != manifest:
            raise ValueError(f"{folder} holds another store ({saved}); use another folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1))


def write_store(
    task: str,
    n: int,
    seed: int,
    size: int,
    folder: str | Path | None = None,
    *,
    shard_size: int = SHARD_SIZE,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate samples 0..n-1 of ``task`` into shards (skipping shards already written); returns the folder.

    ``workers`` processes (default: every core) each write whole shards; an interrupted run is resumed by
    calling again with the same arguments. ``progress(done, total)`` is called after each shard."""
    from .synthetic import get_task

    get_task(task)
    folder = Path(folder) if folder is not None else store_dir(task, seed, size)
    _check_manifest(
        folder,
        {"task": task, "seed": seed, "size": size, "shard_size": shard_size, "version": FORMAT_VERSION},
    )
    shards = -(-n // shard_size)
    todo = [
        (task, seed, size, k, min(shard_size, n - k * shard_size), str(folder))
        for k in range(shards)
        if not _complete(folder, k, min(shard_size, n - k * shard_size))
    ]
    done = shards - len(todo)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if workers == 1:
        results = map(_write_shard, todo)
    else:  # numpy only in the workers; one thread each, so the processes do not oversubscribe the cores
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_write_shard, todo)
    try:
        for _ in results:
            done += 1
            if progress is not None:
                progress(done, shards)
    finally:
        if workers > 1:
            pool.close()
            pool.join()
    return folder


def _complete(folder: Path, k: int, count: int) -> bool:
    """A shard is complete when its images file exists with at least ``count`` rows (a larger store's last
    shard is rewritten when it was the smaller store's partial last one)."""
    path = _shard_paths(folder, k)["images"]
    return path.is_file() and np.load(path, mmap_mode="r").shape[0] >= count


class ShardDataset(Dataset):
    """Samples ``index`` of a store, memory-mapped: ``take(idx)`` reads a batch, ``labels`` is in memory."""

    def __init__(self, folder: str | Path, n: int, index: np.ndarray | None = None):
        self.folder = Path(folder)
        self.shard_size = _shard_size(self.folder)
        shards = -(-n // self.shard_size)
        missing = [k for k in range(shards) if not _shard_paths(self.folder, k)["images"].is_file()]
        if missing:
            raise FileNotFoundError(f"{self.folder} lacks shards {missing[:5]}…; run write_store first")
        self._images = [np.load(_shard_paths(self.folder, k)["images"], mmap_mode="r") for k in range(shards)]
        all_labels = np.concatenate([np.load(_shard_paths(self.folder, k)["labels"]) for k in range(shards)])
        self.index = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        self.labels = all_labels[:n][self.index]
        self._n = n

    def __len__(self) -> int:
        return len(self.index)

    @property
    def image_size(self) -> int:
        """Side of the stored images in pixels."""
        return self._images[0].shape[1]

    def subset(self, idx: np.ndarray) -> ShardDataset:
        """The samples ``idx`` (positions in this dataset) as a dataset of their own (nothing is read)."""
        sub = ShardDataset.__new__(ShardDataset)
        sub.folder, sub.shard_size, sub._images, sub._n = self.folder, self.shard_size, self._images, self._n
        sub.index = self.index[np.asarray(idx, dtype=np.int64)]
        sub.labels = self.labels[np.asarray(idx, dtype=np.int64)]
        return sub

    def take(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels (B, S, S, 3) uint8 and labels (B,) of positions ``idx``, read from the mapped shards."""
        idx = np.asarray(idx, dtype=np.int64)
        rows = self.index[idx]
        s = self.image_size
        out = np.empty((len(rows), s, s, 3), np.uint8)
        shard, offset = np.divmod(rows, self.shard_size)
        for k in np.unique(shard):
            at = np.flatnonzero(shard == k)
            out[at] = self._images[k][offset[at]]
        return torch.from_numpy(out), torch.from_numpy(self.labels[idx])

    def masks(self, idx: np.ndarray) -> np.ndarray:
        """Lesion masks (B, S, S) bool of positions ``idx``."""
        rows = self.index[np.asarray(idx, dtype=np.int64)]
        s = self.image_size
        shard, offset = np.divmod(rows, self.shard_size)
        out = np.empty((len(rows), s, s), bool)
        for k in np.unique(shard):
            at = np.flatnonzero(shard == k)
            packed = np.load(_shard_paths(self.folder, k)["masks"], mmap_mode="r")[offset[at]]
            out[at] = np.unpackbits(packed, axis=1, count=s * s).reshape(len(at), s, s).astype(bool)
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels, labels = self.take(np.array([i]))
        return pixels[0], int(labels[0])
