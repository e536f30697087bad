"""``app.heap``: freed heap memory handed back to the system, on a timer, and the setting that controls it."""

from __future__ import annotations

import threading

import numpy as np
import psutil
import pytest

from app.heap import HeapTrimmer, malloc_trim, start_trimming
from app.settings import load_settings

TRIM = malloc_trim()
needs_glibc = pytest.mark.skipif(TRIM is None, reason="the C library has no malloc_trim")


@needs_glibc
def test_trimming_returns_freed_heap_pages_to_the_system():
    # 96 kB blocks come from malloc's arenas (below its 128 kB mmap threshold); the last one stays alive so
    # that free() alone cannot shrink the heap from its top: the freed 200 MB are only held by malloc.
    blocks = [np.ones(96 * 1024, np.uint8) for _ in range(2048)]
    keep = blocks.pop()
    rss = psutil.Process().memory_info().rss
    del blocks
    held = psutil.Process().memory_info().rss
    assert TRIM() is True
    trimmed = psutil.Process().memory_info().rss
    assert held - trimmed > 100 * 2**20, (rss, held, trimmed)
    assert keep.sum() == keep.size  # the block still alive is untouched


def test_the_trimmer_calls_its_function_on_its_timer_until_stopped():
    calls = threading.Semaphore(0)
    trimmer = HeapTrimmer(calls.release, every_s=0.01).start()
    assert all(calls.acquire(timeout=5) for _ in range(3))
    trimmer.stop()
    after = trimmer.trims
    assert after >= 3 and not trimmer._thread.is_alive() and trimmer.trims == after


def test_a_failing_trim_ends_the_trimmer_quietly(caplog):
    def broken() -> None:
        raise OSError("no")

    trimmer = HeapTrimmer(broken, every_s=0.01).start()
    trimmer._thread.join(timeout=5)
    assert not trimmer._thread.is_alive() and trimmer.trims == 0
    assert "malloc_trim failed" in caplog.text


def test_zero_seconds_means_no_trimming_and_bad_intervals_are_refused():
    assert start_trimming(0) is None
    with pytest.raises(ValueError):
        HeapTrimmer(lambda: None, every_s=0)


@needs_glibc
def test_start_trimming_runs_on_glibc():
    trimmer = start_trimming(0.01)
    assert trimmer is not None
    try:
        for _ in range(500):
            if trimmer.trims:
                break
            threading.Event().wait(0.01)
        assert trimmer.trims >= 1
    finally:
        trimmer.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 10.0), ("0", 0.0), ("7.5", 7.5), ("-1", 10.0), ("soon", 10.0), ("inf", 10.0)],
)
def test_the_interval_comes_from_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("DIFFMIC_TRIM_EVERY_S", raising=False)
    else:
        monkeypatch.setenv("DIFFMIC_TRIM_EVERY_S", value)
    assert load_settings().trim_every_s == expected
