"""``benchmarks/soak.py`` for a few seconds against ``python app.py`` on tiny models: every kind of request
(Diagnose streams to the end and stopped mid-run, /predict, an Evaluate zip, bad files, a model switch)
ends as it should, and the report holds the figures the issue asks for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.test_app_support import make_app_dirs

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_a_short_soak_has_no_unexpected_failure(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import soak

    settings = make_app_dirs(tmp_path, n_examples=3, tasks=("fundus", "derm"))
    args = ["--duration", "4", "--warmup", "1", "--clients", "6", "--sample-every", "1", "--json"]
    args += ["--weights", str(settings.weights_dir), "--assets", str(settings.assets_dir)]
    report = soak.main(args)
    assert report["unexpected_failures"] == 0, report["failure_examples"]
    assert set(soak.KINDS) <= set(report["requests"]) and report["server_alive"]
    assert report["stray_temp_entries"] == [] and report["run_folders_beyond_bound"] == []
    assert report["run_folders"] >= 1 and report["fds_end"] > 0 and report["rss_end_mb"] > 0
    assert len(report["samples"]) >= 2 and "soak" in sys.modules


class _Job:
    """A streamed job as gradio_client shows it: the updates so far and whether it has ended."""

    def __init__(self, updates: int, ended: bool):
        self._outputs, self._ended = ["update"] * updates, ended

    def outputs(self) -> list:
        return self._outputs

    def done(self) -> bool:
        return self._ended


def test_a_stream_that_stops_sending_fails_instead_of_hanging(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import soak

    soak.wait_for_updates(_Job(2, ended=False), wanted=2, timeout_s=0.05)  # enough updates
    soak.wait_for_updates(_Job(0, ended=True), wanted=3, timeout_s=0.05)  # ended early: its result decides
    with pytest.raises(soak.Unexpected, match="0 of 1 updates"):
        soak.wait_for_updates(_Job(0, ended=False), wanted=1, timeout_s=0.05)


def test_memory_is_judged_by_the_peaks_of_its_saw(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import soak

    saw = [(t, 1000.0 if t % 30 < 25 else 800.0) for t in range(0, 600, 5)]  # handed back every 30 s
    assert soak.memory_peaks(saw, warmup=100, end=600, window=60) == (1000.0, 1000.0)
    rising = [(t, 1000.0 + t) for t in range(0, 600, 5)]
    assert soak.memory_peaks(rising, warmup=100, end=600, window=60) == (1160.0, 1595.0)
    # a short run: windows of half the measured time; nothing sampled in them: the first and last samples
    short = [(float(t), 5.0 + t) for t in range(5)]
    assert soak.memory_peaks(short, warmup=1, end=5, window=60) == (8.0, 9.0)  # t in [1, 3] and [3, 5]
    assert soak.memory_peaks([(0.0, 5.0)], warmup=10, end=20, window=5) == (5.0, 5.0)
