"""``benchmarks/sessions.py``: memory per new session, and its growth once the app's session bound is met."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_app_support import make_app_dirs

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_the_summary_gives_mb_per_session_and_the_growth_after_the_bound(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import sessions

    rows = [(0, 1000.0), (50, 1100.0), (100, 1150.0), (150, 1160.0), (200, 1140.0)]
    assert sessions.summary(rows, bound=100) == {"mb_per_session": 1.0, "growth_after_bound_pct": 0.87}
    assert sessions.summary([(0, 1000.0), (10, 1020.0)], bound=100) == {
        "mb_per_session": 2.0,
        "growth_after_bound_pct": None,
    }


@pytest.mark.slow
def test_a_few_sessions_against_the_app(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import sessions

    settings = make_app_dirs(tmp_path, n_examples=2, tasks=("fundus",))
    args = ["--sessions", "3", "--max-sessions", "2", "--every", "1", "--trim-wait", "0", "--json"]
    args += ["--weights", str(settings.weights_dir), "--assets", str(settings.assets_dir)]
    report = sessions.main(args)
    assert [n for n, _ in report["rss_mb"]] == [0, 1, 2, 3]
    assert all(mb > 0 for _, mb in report["rss_mb"]) and report["growth_after_bound_pct"] is not None
