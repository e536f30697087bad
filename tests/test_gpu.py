"""ZeroGPU: the app's inference entry points are wrapped with ``spaces.GPU`` when ``spaces`` is importable."""

import sys
import types

from app.gpu import on_gpu
from app.models import ModelRegistry
from app.ui import build_demo
from tests.test_app_support import make_app_dirs


def fake_spaces(wrapped: list[str]) -> types.ModuleType:
    module = types.ModuleType("spaces")

    def gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    module.GPU = gpu
    return module


def test_without_spaces_the_function_is_unchanged(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import fails, as off a Space
    fn = lambda: 1  # noqa: E731
    assert on_gpu(fn) is fn


def test_on_a_zerogpu_space_run_and_predict_are_wrapped(monkeypatch, tmp_path):
    wrapped: list[str] = []
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(wrapped))
    settings = make_app_dirs(tmp_path)
    build_demo(settings, ModelRegistry(settings))
    assert {"run", "predict"} <= set(wrapped)
