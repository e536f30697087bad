"""Generated training data in memory-mapped shards: read back identically, resumable, split as before."""

import numpy as np
import pytest

from diffmic.data import shards
from diffmic.data.datasets import batch_of, synthetic_arrays, synthetic_splits
from diffmic.data.readers import stratified_split
from diffmic.data.shards import ShardDataset, write_store


def test_shards_read_back_what_the_generator_draws(tmp_path):
    folder = write_store("placenta", 25, 3, 48, tmp_path / "s", shard_size=10, workers=1)
    images, labels, masks = synthetic_arrays("placenta", 25, 3, 48, use_cache=False)
    data = ShardDataset(folder, 25)
    pixels, got = data.take(np.arange(25))
    assert np.array_equal(pixels.numpy(), images) and np.array_equal(got.numpy(), labels)
    assert np.array_equal(data.masks(np.arange(25)), masks)
    assert isinstance(data._images[0], np.memmap)  # mapped, not read into memory
    sub = data.subset(np.array([24, 3, 11]))  # across shards, in any order
    pixels, got = batch_of(sub, np.array([0, 2]))
    assert np.array_equal(pixels.numpy(), images[[24, 11]]) and np.array_equal(got.numpy(), labels[[24, 11]])


def test_an_interrupted_generation_resumes_with_the_missing_shards_only(tmp_path, monkeypatch):
    folder = tmp_path / "s"
    calls = []
    real = shards._write_shard

    def crash_on_second(args):
        if len(calls) == 1:
            raise KeyboardInterrupt  # the run stopped after one shard
        calls.append(args[3])
        return real(args)

    monkeypatch.setattr(shards, "_write_shard", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        write_store("fundus", 30, 0, 40, folder, shard_size=10, workers=1)
    assert sorted(p.name for p in folder.glob("images-*.npy")) == ["images-00000.npy"]
    assert not list(folder.glob("*.tmp.npy"))  # no half-written shard is left as complete

    calls.clear()
    monkeypatch.setattr(shards, "_write_shard", lambda args: calls.append(args[3]) or real(args))
    write_store("fundus", 30, 0, 40, folder, shard_size=10, workers=1)
    assert calls == [1, 2]  # shard 0 was not redrawn
    images, labels, _ = synthetic_arrays("fundus", 30, 0, 40, use_cache=False)
    pixels, got = ShardDataset(folder, 30).take(np.arange(30))
    assert np.array_equal(pixels.numpy(), images) and np.array_equal(got.numpy(), labels)

    calls.clear()  # a larger store redraws only the partial last shard and the new ones
    write_store("fundus", 35, 0, 40, folder, shard_size=10, workers=1)
    assert calls == [3]
    write_store("fundus", 45, 0, 40, folder, shard_size=10, workers=1)
    assert calls == [3, 3, 4]


def test_a_store_of_other_settings_is_refused(tmp_path):
    write_store("derm", 4, 0, 40, tmp_path / "s", shard_size=10, workers=1)
    with pytest.raises(ValueError, match="another store"):
        write_store("derm", 4, 1, 40, tmp_path / "s", shard_size=10, workers=1)
    with pytest.raises(FileNotFoundError, match="write_store"):
        ShardDataset(tmp_path / "s", 30)


def test_parallel_workers_write_the_same_shards(tmp_path):
    one = write_store("derm", 12, 0, 40, tmp_path / "one", shard_size=4, workers=1)
    two = write_store("derm", 12, 0, 40, tmp_path / "two", shard_size=4, workers=2)
    for k in range(3):
        for name in ("images", "labels", "masks"):
            a, b = (np.load(f / f"{name}-{k:05d}.npy") for f in (one, two))
            assert np.array_equal(a, b)


def test_synthetic_splits_keep_the_split_and_cap_validation():
    images, labels, masks = synthetic_arrays("fundus", 60, 0, 40, use_cache=False)
    splits = synthetic_splits("fundus", 60, 0, 40, seed=0)
    tr, va = stratified_split(labels, (0.85, 0.15), 0)
    pixels, got = batch_of(splits.train, np.arange(len(tr)))
    assert np.array_equal(pixels.numpy(), images[tr]) and np.array_equal(got.numpy(), labels[tr])
    assert np.array_equal(splits.val.images, images[va]) and np.array_equal(splits.val.masks, masks[va])
    capped = synthetic_splits("fundus", 60, 0, 40, seed=0, val_max=5)
    assert len(capped.val) == 5 and len(capped.train) == 55
