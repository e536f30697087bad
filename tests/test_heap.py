"""``app.heap``: freed heap memory handed back to the system, on a timer, and the setting that controls it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.heap import HeapTrimmer, malloc_trim, start_trimming
from app.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
TRIM = malloc_trim()
needs_glibc = pytest.mark.skipif(TRIM is None, reason="the C library has no malloc_trim")


# In a process of its own: the tests' servers trim on their timers, and their heap holds holes of any size.
FREED_BUT_HELD = """
import json, numpy as np, psutil
from app.heap import malloc_trim
rss = lambda: psutil.Process().memory_info().rss
start = rss()
blocks = [np.ones(96 * 1024, np.uint8) for _ in range(2048)]
keep = blocks.pop()
del blocks
held = rss()
released = malloc_trim()()
trimmed = rss()
print(json.dumps(dict(start=start, held=held, trimmed=trimmed, released=released, kept=int(keep.sum()))))
"""


@needs_glibc
def test_trimming_returns_freed_heap_pages_to_the_system():
    # 96 kB blocks come from malloc's heap (below its 128 kB mmap threshold); the last one stays alive so
    # that free() cannot shrink the heap from its top: the 200 MB freed stay held by malloc until trimmed.
    out = subprocess.run([sys.executable, "-c", FREED_BUT_HELD], capture_output=True, text=True, cwd=REPO)
    m = json.loads(out.stdout or out.stderr)
    assert m["held"] - m["start"] > 150 * 2**20, m  # the freed blocks are still resident
    assert m["released"] is True and m["held"] - m["trimmed"] > 150 * 2**20, m
    assert m["kept"] == 96 * 1024  # the block still alive is untouched


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
