"""ZeroGPU: every handler that runs a model is wrapped with ``spaces.GPU`` when ``spaces`` is importable, the
wrapped handlers are the ones Gradio calls, and they still work."""

from __future__ import annotations

import functools
import inspect
import sys
import types

import pytest

from app.diagnose import Diagnosis
from app.diagnose_frames import OUTPUTS
from app.evaluation import Evaluation
from app.gpu import on_gpu
from app.learn import LEARN_OUTPUTS, Lessons
from app.models import ModelRegistry
from app.replay_handlers import ReplayHandlers
from app.ui import build_demo
from tests.test_app_support import make_app_dirs

HANDLERS = {cls.__name__ for cls in (Diagnosis, ReplayHandlers, Lessons, Evaluation)}
# the handlers that run a network (the chain, the DCG, Grad-CAM) and so need the GPU attached
ON_GPU = {
    "Diagnosis.run",
    "Diagnosis.rerun",
    "Diagnosis.predict",
    "Diagnosis.redraw_heat",  # makes Grad-CAM on first use
    "Lessons.run",
    "Lessons.on_open",
    "Lessons.for_model",
    "Evaluation.run",
    "Evaluation.run_generated",
}
# the handlers that only read settings, draw figures or clear outputs
OFF_GPU = {
    "Diagnosis.preview",
    "Diagnosis.model_changed",
    "Diagnosis.arm",
    "Diagnosis.token",
    "Diagnosis.stop",
    "Diagnosis.figure",
    "Diagnosis.case_report",
    "ReplayHandlers.replay_play",  # the replay draws the run's own trajectory
    "ReplayHandlers.replay_tick",
    "ReplayHandlers.replay_at",
    "ReplayHandlers.runs_after_run",
    "Lessons.scrub",
    "Lessons.play_forward",
    "Lessons.play_reverse",
    "Lessons.advance",
    "Evaluation.generated_button",
}


def fake_spaces(calls: list[str]) -> types.ModuleType:
    """A stand-in ``spaces`` module whose ``GPU`` wraps like the real one (generators stay generators) and
    records every call of a wrapped function."""
    module = types.ModuleType("spaces")

    def gpu(fn):
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream(*args, **kwargs):
                calls.append(fn.__qualname__)
                yield from fn(*args, **kwargs)

            wrapper = stream
        else:

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                calls.append(fn.__qualname__)
                return fn(*args, **kwargs)

        wrapper.on_zero_gpu = True
        return wrapper

    module.GPU = gpu
    return module


def handler_name(fn) -> str | None:
    """``Class.method`` of a handler of the app's handler classes (through spaces.GPU), else None."""
    name = getattr(fn, "__qualname__", "")
    return name if name.split(".")[0] in HANDLERS else None


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_app_dirs(tmp_path_factory.mktemp("gpu"), n_examples=2)


@pytest.fixture
def zero_gpu(monkeypatch, settings):
    """The demo built as on a ZeroGPU Space: its registered handlers by name, and the wrapped calls."""
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(calls))
    demo = build_demo(settings, ModelRegistry(settings))
    registered: dict[str, list] = {}
    for block_fn in demo.fns.values():
        name = handler_name(block_fn.fn)
        if name is not None:
            registered.setdefault(name, []).append(block_fn)
    return registered, calls


def test_without_spaces_the_function_is_unchanged(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import fails, as off a Space
    fn = lambda: 1  # noqa: E731
    assert on_gpu(fn) is fn


def test_every_handler_that_runs_a_model_is_wrapped(zero_gpu):
    registered, _ = zero_gpu
    assert set(registered) == ON_GPU | OFF_GPU, "a new handler: add it to ON_GPU or OFF_GPU"
    for name, block_fns in registered.items():
        wrapped = [getattr(b.fn, "on_zero_gpu", False) for b in block_fns]
        assert wrapped == [name in ON_GPU] * len(block_fns), name
    assert len(registered["Lessons.run"]) == 4  # the button, the image menu and the two prior controls


def test_the_wrapped_handlers_still_work(zero_gpu, settings):
    registered, calls = zero_gpu
    example = str(sorted((settings.assets_dir / "fundus").glob("*.png"))[0])
    (rerun,) = (b.fn for b in registered["Diagnosis.rerun"])
    (predict,) = (b.fn for b in registered["Diagnosis.predict"])
    (evaluate,) = (b.fn for b in registered["Evaluation.run"])
    assert inspect.isgeneratorfunction(rerun)  # Gradio still streams it
    final = dict(zip(OUTPUTS, list(rerun("shown", example, "fundus", "DDIM", 5, 2, 0))[-1], strict=True))
    answer = predict(example, "fundus", "ddim", 5, 2, 0)
    answer.pop("seconds"), final["json"].pop("seconds")
    assert final["json"] == answer and answer["sampler"] == "ddim" and answer["steps"] == 5
    lesson = dict(zip(LEARN_OUTPUTS, registered["Lessons.run"][0].fn("fundus", example), strict=True))
    assert lesson["error"]["visible"] is False and "DDIM" in lesson["sampler_note"]
    assert "upload a .zip" in evaluate(None, "fundus", "DDIM", 5, 1)[-1]["value"]
    assert calls == ["Diagnosis.rerun", "Diagnosis.predict", "Lessons.run", "Evaluation.run"]
