"""``app.settings`` read from the environment, and the serving options that ``app.server.launch`` sets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app import server
from app.settings import MAX_SESSIONS, load_settings
from tests.test_app_support import make_app_dirs


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("DIFFMIC_MAX_SESSIONS", None, "max_sessions", MAX_SESSIONS),
        ("DIFFMIC_MAX_SESSIONS", "40", "max_sessions", 40),
        ("DIFFMIC_MAX_SESSIONS", "0", "max_sessions", MAX_SESSIONS),
        ("DIFFMIC_MAX_SESSIONS", "-3", "max_sessions", MAX_SESSIONS),
        ("DIFFMIC_MAX_SESSIONS", "many", "max_sessions", MAX_SESSIONS),
        ("DIFFMIC_TORCH_THREADS", None, "torch_threads", 1),
        ("DIFFMIC_TORCH_THREADS", "2", "torch_threads", 2),
        ("DIFFMIC_TORCH_THREADS", "0", "torch_threads", 1),
        ("DIFFMIC_TORCH_THREADS", "2.5", "torch_threads", 1),
    ],
)
def test_whole_numbers_come_from_the_environment(monkeypatch, variable, value, field, expected):
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), field) == expected


def test_gradio_keeps_at_most_the_configured_number_of_sessions(monkeypatch, tmp_path):
    seen = {}
    demo = SimpleNamespace(queue=lambda **_: None, launch=lambda **options: seen.update(options), fns={})
    settings = make_app_dirs(tmp_path, 1)
    monkeypatch.setattr(server, "start_trimming", lambda every_s: seen.update(trim_every_s=every_s))
    server.launch(demo, None, type(settings)(**{**vars(settings), "max_sessions": 7, "trim_every_s": 3.0}))
    assert seen["state_session_capacity"] == 7 and seen["trim_every_s"] == 3.0
