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
