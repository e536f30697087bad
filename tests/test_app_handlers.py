"""The app's handlers called in-process with tiny models: streaming, Stop, stale results, the answer card,
the distribution warning, the maps, the API, bad inputs, Learn and Evaluate."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from app import report
from app.assets import list_examples
from app.case_report import config_hash
from app.controls import sampling_options
from app.diagnose import Diagnosis
from app.diagnose_frames import OUTPUTS, REPLAY_OUTPUTS, WAITING
from app.errors import UserError
from app.evaluation import Evaluation, dataset_root, generated_note
from app.figures import trajectory_figure
from app.learn import (
    FRAME_OUTPUTS,
    LEARN_OUTPUTS,
    OWN_PRIOR,
    PLAY_OUTPUTS,
    SCRUB_OUTPUTS,
    LessonImage,
    Lessons,
    one_hot,
    shown_key,
)
from app.lesson_figures import LessonFigures, reverse_figure
from app.lesson_processes import forward_process
from app.maps import DEFAULT_HEAT, MAP_SIDE, heat_image, original
from app.models import ModelRegistry
from app.replay import REPLAY_FRAMES, REPLAY_POINTS, REPLAY_SECONDS, frame_at, frame_steps
from app.settings import Settings
from app.ui import build_demo
from diffmic.class_match import class_index
from diffmic.data.synthetic.ceiling import best_possible
from diffmic.hub import ModelLoadError
from diffmic.imageio import DecodedImage
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline, RecordedState
from diffmic.trajectory import MAX_PLOT_POINTS, Trajectory
from diffmic.uncertainty import sample_uncertainty
from tests.test_app_support import FUNDUS, make_app_dirs, make_dataset_zip, random_png


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return make_app_dirs(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> ModelRegistry:
    """Bundled fundus and derm models (the derm task has no example images)."""
    return ModelRegistry(make_app_dirs(tmp_path_factory.mktemp("two"), 2, tasks=("fundus", "derm")))


@pytest.fixture(scope="module")
def example(settings):
    return str(sorted((settings.assets_dir / "fundus").glob("*.png"))[0])


def as_dict(frame: tuple) -> dict:
    return dict(zip(OUTPUTS, frame, strict=True))


def is_skip(value) -> bool:
    return isinstance(value, dict) and value == {"__type__": "update"}


def shown_error(frame: tuple) -> str:
    box = as_dict(frame)["error"]
    assert box["visible"] is True
    return box["value"]


def assert_cleared(frame: dict) -> None:
    """Every result of a frame emptied: nothing stale stays beside new inputs."""
    assert frame["answer"] == WAITING and frame["json"] is None and frame["maps"] is None
    assert frame["heat"] is None and frame["rois"] is None and frame["crops"] == []
    assert frame["downloads"] is None and frame["details"] == ""
    assert not frame["trajectory"].data  # the empty figure


def run(diagnosis: Diagnosis, image, *args, **kwargs) -> list[dict]:
    return [as_dict(f) for f in diagnosis.run(image, *args, **kwargs)]


# ---------------------------------------------------------------- models
def test_registry_offers_bundled_pipelines_and_says_which_are_missing(registry):
    assert registry.available() == ["fundus"]
    assert registry.default_choice() == "fundus"
    status = registry.status_markdown()
    assert "**fundus** ✓" in status and "**derm** missing" in status and "placenta" in status
    labels = dict((v, k) for k, v in registry.choices())
    assert "(missing)" in labels["derm"] and "(missing)" not in labels["fundus"]
    assert registry.timesteps("fundus") == 100 and registry.task_of("fundus") == "fundus"
    with pytest.raises(ModelLoadError, match="bundled derm model is missing"):
        registry.get("derm")
    selection = registry.get("fundus")
    assert isinstance(selection.pipe, DiffMICPipeline) and selection.task == "fundus"
    assert selection.pipe is registry.get("fundus").pipe  # cached
    odd = registry.get("../../etc")
    assert "neither a bundled model" in odd.notice and odd.pipe is selection.pipe


def test_unreachable_hub_falls_back_to_the_bundled_model(registry):
    selection = registry.get("someone/diffmic-fundus")  # HF_HUB_OFFLINE=1 in the tests
    assert selection.pipe is registry.get("fundus").pipe
    assert "Could not load `someone/diffmic-fundus`" in selection.notice
    assert "bundled **fundus**" in selection.notice
    assert registry.task_of("someone/diffmic-fundus") == "fundus"  # the model that answers
    assert registry.task_of("someone/diffmic-fundus", load=False) is None  # building the page never waits


def test_unknown_hub_repo_falls_back_with_the_reason(registry, monkeypatch):
    def not_found(repo, *args, **kwargs):
        raise ModelLoadError(f"Hub repo {repo} was not found (or it is private and no valid token was given)")

    monkeypatch.setattr("app.models.resolve_folder", not_found)
    selection = registry.get("someone/missing-derm")
    assert "was not found" in selection.notice and "bundled **fundus**" in selection.notice


def test_hub_fallback_needs_a_bundled_model(tmp_path):
    empty = ModelRegistry(Settings(tmp_path / "none", tmp_path / "none", "org/name", 1))
    assert empty.default_choice() == "org/name"
    assert "No bundled model" in empty.status_markdown()
    with pytest.raises(ModelLoadError, match="no bundled model is available"):
        empty.get("org/name")


def test_app_builds_without_any_model(tmp_path):
    settings = Settings(tmp_path / "none", tmp_path / "none", None, 1)
    demo = build_demo(settings)
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"predict", "diagnose"} <= names


# ---------------------------------------------------------------- Diagnose: the run
def test_run_streams_a_first_frame_then_the_answer(registry, example):
    frames = run(Diagnosis(registry), example, "fundus", "DDPM", 100, 4, 0)
    first, last = frames[0], frames[-1]
    assert first["original"].shape == (MAP_SIDE, MAP_SIDE, 3) and first["heat"] is None
    assert "Step 0" in first["counter"] and first["error"]["visible"] is False
    assert "What to look for" in first["look_for"] and "mean of the 4 runs" in first["look_for"]
    assert "Moderate = Moderate non-proliferative DR" in first["glossary"]
    # the final frame: one run time, the answer card first, statistics under details
    assert last["counter"].startswith("**Done:** 100 of 100 steps in")
    answer = last["answer"]
    label, call = last["json"]["label"], last["json"]["uncertainty"]["close_call"]
    heads = {
        "clear": f"### {report.full_name('fundus', label)} — probability",
        "close": f"### Close call between {report.full_name('fundus', label)} and",
        "tie": f"### A tie: {report.full_name('fundus', label)} and",
    }
    assert answer.startswith(heads[call["verdict"]]) and "<details" not in answer
    assert "4 runs:" in answer and "not for clinical use" in answer
    assert "p = " not in answer and "nats" not in answer  # the statistics are in the details
    assert "paired t-test" in last["details"] and "entropy" in last["details"]
    assert "Distribution check: not available" in last["details"] and last["json"]["assessable"] is True
    assert last["heat"].shape == (MAP_SIDE, MAP_SIDE, 3) and last["rois"].shape == (MAP_SIDE, MAP_SIDE, 3)
    assert [caption.split(" · ")[0] for _, caption in last["crops"]] == ["1", "2", "3"]
    assert last["json"]["steps"] == 100 and last["json"]["ood"]["available"] is False
    assert last["maps"].gradcam is None and last["maps"].make_gradcam is not None  # made when shown
    assert last["figure"].png.suffix == ".png" and not last["figure"].png.exists()  # made when asked
    for middle in frames[1:-1]:
        assert is_skip(middle["heat"]) and is_skip(middle["answer"])


def test_trajectory_starts_at_the_prior_with_the_mean_and_the_range_of_the_runs(registry, example):
    pipe = registry.get("fundus").pipe
    out = pipe(example, SamplingOptions(samples=3, seed=0))
    fig = trajectory_figure(out.trajectory, 100)
    bands = [t for t in fig.data if t.fill == "toself"]
    lines = [t for t in fig.data if t.mode == "lines" and t.legendgroup]
    assert len(bands) == 5 and len(lines) == 5
    probs = out.trajectory.probs
    for c, line in enumerate(lines):
        assert line.x[0] == 100 and line.y[0] == pytest.approx(out.trajectory.prior[c], abs=1e-4)
        assert len(line.x) <= MAX_PLOT_POINTS + 1
        assert line.y[-1] == pytest.approx(probs[-1, :, c].mean(), abs=1e-4)
        assert "min–max of the runs" in line.hovertemplate
    band = bands[0].y
    assert band[len(band) // 2 - 1] == pytest.approx(probs[-1, :, 0].max(), abs=1e-4)
    assert band[len(band) // 2] == pytest.approx(probs[-1, :, 0].min(), abs=1e-4)
    assert [t.name for t in fig.data if t.mode == "lines" and not t.legendgroup] == [
        "shaded: min–max of the 3 runs"
    ]
    single = pipe(example, SamplingOptions(sampler="ddim", steps=5, samples=1))
    assert not [t for t in trajectory_figure(single.trajectory, 100).data if t.fill == "toself"]


def test_downloads_hold_the_whole_trajectory(registry, example):
    last = run(Diagnosis(registry), example, "fundus", "DDIM", 20, 3, 1)[-1]
    csv_path, json_path = last["downloads"]
    assert is_skip(Diagnosis.figure(None))  # no run, no figure
    assert Diagnosis.figure(last["figure"]) == [csv_path, json_path, str(last["figure"].png)]
    png_path = last["figure"].png
    rows = list(csv.reader(io.StringIO(open(csv_path).read())))
    assert rows[0][:2] == ["step", "t"] and len(rows[0]) == 2 + 3 * 5
    assert len(rows) == 1 + 20 and rows[-1][1] == "0"
    payload = json.loads(open(json_path).read())
    assert payload["prediction"] == last["json"]
    assert np.asarray(payload["trajectory"]["probabilities"]).shape == (3, 20, 5)
    # what is plotted: the mean and the min–max band, in the CSV and the JSON alike
    plotted = [t for t in last["trajectory"].data if t.mode == "lines" and t.legendgroup]
    for c, line in enumerate(plotted):
        assert float(rows[-1][2 + c]) == pytest.approx(line.y[-1], abs=1e-4)
        assert payload["trajectory"]["mean"][-1][c] == pytest.approx(line.y[-1], abs=1e-4)
        low, high = line.customdata[-1]
        assert (float(rows[-1][7 + c]), float(rows[-1][12 + c])) == pytest.approx((low, high), abs=1e-4)
        assert (payload["trajectory"]["min"][-1][c], payload["trajectory"]["max"][-1][c]) == pytest.approx(
            (low, high), abs=1e-4
        )
    with Image.open(png_path) as im:
        assert im.format == "PNG" and im.size[0] >= 1200


def test_stream_is_throttled(registry, example):
    assert len(run(Diagnosis(registry, interval_s=0.0), example, "fundus", "DDPM", 100, 1, 0)) == 1 + 99 + 1
    assert len(run(Diagnosis(registry, interval_s=60.0), example, "fundus", "DDPM", 100, 1, 0)) == 2


def test_predict_api_returns_the_pipeline_json(registry, example):
    answer = Diagnosis(registry).predict(example, "fundus", "ddim", 10, 3, 7)
    options = SamplingOptions(sampler="ddim", steps=10, samples=3, seed=7)
    expected = registry.get("fundus").pipe(example, options).to_json()
    answer.pop("seconds"), expected.pop("seconds")
    keys = list(answer)
    assert keys[keys.index("ood") + 1] == "assessable" and answer.pop("assessable") is True
    assert answer == expected and answer["ood"] == {
        "available": False,
        "score": None,
        "threshold": None,
        "flagged": False,
    }
    all_steps = Diagnosis(registry).predict(example, "fundus", "DDPM", 0, 1, 0)
    assert all_steps["steps"] == 100 and all_steps["sampler"] == "ddpm"


def test_same_seed_same_answer(registry, example):
    runs = [run(Diagnosis(registry), example, "fundus", "DDPM", 100, 4, 3)[-1] for _ in range(2)]
    assert runs[0]["json"]["probabilities"] == runs[1]["json"]["probabilities"]


# ---------------------------------------------------------------- Diagnose: the sampler switch
def test_the_sampler_switch_reruns_the_shown_image_with_the_new_sampler(registry, example):
    diagnosis = Diagnosis(registry)
    nothing = list(diagnosis.rerun(None, example, "fundus", "DDIM", 20, 3, 2))  # no result shown yet
    assert len(nothing) == 1 and all(is_skip(v) for v in nothing[0])
    shown = run(diagnosis, example, "fundus", "DDPM", 100, 3, 2)[-1]
    frames = [
        as_dict(f)
        for f in diagnosis.rerun(shown["maps"], example, "fundus", "DDIM", 20, 3, 2, diagnosis.token())
    ]
    first, last = frames[0], frames[-1]
    assert first["answer"] == "*Denoising the label…*" and first["look_for"].startswith(
        "**What to look for:** DDIM"
    )  # the DDPM result is cleared while the new chains run
    assert last["counter"].startswith("**Done:** 20 of 20 steps")
    expected = registry.get("fundus").pipe(example, SamplingOptions("ddim", 20, 3, 2)).to_json()
    got = dict(last["json"])
    got.pop("seconds"), expected.pop("seconds"), got.pop("assessable")
    assert got == expected  # the DDIM answer for the same image, seed and runs
    assert got["sampler"] == "ddim" and got["probabilities"] != shown["json"]["probabilities"]
    assert list(csv.reader(open(last["downloads"][0])))[-1][1] == "0"  # the new chain's trajectory
    assert len(list(csv.reader(open(last["downloads"][0])))) == 1 + 20


def test_the_sampler_switch_reruns_with_the_run_buttons_inputs(settings, registry):
    """Wired as: sampler input → steps follow the sampler → a fresh stop token → rerun(shown map state, the
    Run button's inputs), so the re-run is of the same image, model, steps, runs and seed."""
    demo = build_demo(settings, registry)
    by_name = {getattr(b.fn, "__qualname__", ""): b for b in demo.fns.values()}
    run_fn, rerun_fn, token_fn = (
        by_name["Diagnosis.run"],
        by_name["Diagnosis.rerun"],
        by_name["Diagnosis.token"],
    )
    assert [c._id for c in rerun_fn.inputs[1:]] == [c._id for c in run_fn.inputs]
    assert isinstance(rerun_fn.inputs[0], gr.State) and rerun_fn.outputs == run_fn.outputs
    assert rerun_fn.trigger_after == token_fn._id
    switch = demo.fns[token_fn.trigger_after]
    (target,) = switch.targets
    assert target[1] == "input" and demo.blocks[target[0]].elem_id == "sampler"


# ---------------------------------------------------------------- Diagnose: Stop and stale results
def test_stop_ends_the_run_with_the_step_it_reached(registry, example):
    diagnosis = Diagnosis(registry, interval_s=0.0)
    frames = diagnosis.run(example, "fundus", "DDPM", 100, 2, 0)
    seen = [as_dict(next(frames)) for _ in range(11)]  # the first frame and ten steps
    diagnosis.stop()
    rest = [as_dict(f) for f in frames]
    assert len(rest) == 1
    assert rest[0]["counter"].startswith("**Stopped at step 10 of 100.**")
    assert "no answer" in rest[0]["answer"] and is_skip(rest[0]["trajectory"])  # the partial chain stays
    assert "Step 10 of 100" in seen[-1]["counter"]
    # the page is usable again: the next run goes to the end
    assert run(diagnosis, example, "fundus", "DDIM", 5, 1, 0)[-1]["counter"].startswith("**Done:**")


def test_stop_while_queued_stops_the_run_before_its_first_step(registry, example):
    diagnosis = Diagnosis(registry)
    token, counter = diagnosis.arm()  # Run pressed: the run waits in the queue
    assert counter == "*Starting…*"
    diagnosis.stop()
    frames = run(diagnosis, example, "fundus", "DDPM", 100, 1, 0, token)
    assert len(frames) == 1 and frames[0]["counter"].startswith("**Stopped at step 0 of 100.**")


def test_a_new_image_clears_the_results_and_ends_the_old_run(registry, example, settings):
    diagnosis = Diagnosis(registry, interval_s=0.0)
    frames = diagnosis.run(example, "fundus", "DDPM", 100, 1, 0)
    next(frames), next(frames)
    other = sorted((settings.assets_dir / "fundus").glob("*.png"))[1]
    preview, *cleared = diagnosis.preview(str(other))
    assert preview.shape[2] == 3
    assert_cleared(as_dict(tuple(cleared)))
    assert list(frames) == []  # stale: nothing more is written over the cleared page
    # a late preview of the run's own image does not end it
    frames = diagnosis.run(example, "fundus", "DDIM", 5, 1, 0)
    next(frames)
    diagnosis.preview(example)
    assert as_dict(list(frames)[-1])["counter"].startswith("**Done:**")
    assert_cleared(as_dict(diagnosis.model_changed("fundus")))
    empty_preview, *_ = diagnosis.preview(None)
    assert empty_preview is None


def test_the_same_image_under_another_path_keeps_its_run_and_answer(registry, example, tmp_path):
    """A drop that replaces the image can send its change event twice, the file under two temporary paths: the
    second preview is of the image the run is answering, so the run goes on and its answer stays."""
    diagnosis = Diagnosis(registry, interval_s=0.0)
    diagnosis.preview(example)
    copy = tmp_path / "copy" / Path(example).name
    copy.parent.mkdir()
    copy.write_bytes(Path(example).read_bytes())
    frames = diagnosis.run(example, "fundus", "DDIM", 5, 1, 0)
    next(frames)
    preview, *kept = diagnosis.preview(str(copy))  # the late event, mid-run
    assert preview.shape[2] == 3 and all(is_skip(v) for v in kept)
    assert as_dict(list(frames)[-1])["counter"].startswith("**Done:**")
    _, *kept = diagnosis.preview(str(copy))  # and after "Done": the answer stays
    assert all(is_skip(v) for v in kept)
    other = sorted(Path(example).parent.glob("*.png"))[1]
    _, *cleared = diagnosis.preview(str(other))  # another image clears
    assert_cleared(as_dict(tuple(cleared)))


# ---------------------------------------------------------------- Diagnose: the answer card
def fake_output(sample_probs, task_names=FUNDUS, ood=None):
    probs = np.asarray(sample_probs, float)
    mean = probs.mean(0)
    return SimpleNamespace(
        probabilities=dict(zip(task_names, mean.tolist(), strict=True)),
        sample_probs=probs,
        label_index=int(mean.argmax()),
        label=task_names[int(mean.argmax())],
        uncertainty=sample_uncertainty(probs).to_dict(task_names),
        ood=ood or {"available": False, "score": None, "threshold": None, "flagged": False},
    )


def test_answer_card_speaks_plainly_and_says_ties():
    moderate, severe = np.eye(5)[2] * 0.6 + 0.08, np.eye(5)[3] * 0.6 + 0.08
    mostly = fake_output([moderate] * 7 + [severe])
    card = report.answer_markdown(mostly, "fundus")
    assert card.startswith("### Moderate non-proliferative DR (Moderate) — probability 60 %")
    assert "8 runs: 8 %–68 %" in card and "Close call" not in card
    assert "The 8 runs split: 7 for Moderate non-proliferative DR (Moderate) and 1 for Severe" in card
    tie = report.answer_markdown(fake_output([moderate] * 4 + [severe] * 4), "fundus")
    assert tie.startswith("### A tie: Moderate non-proliferative DR (Moderate) and Severe")
    assert "A tie between the runs: 4 each for" in tie and "More runs (Settings)" in tie
    agree = report.answer_markdown(fake_output([moderate] * 3), "fundus")
    assert "All 3 runs agree." in agree
    one = report.answer_markdown(fake_output([moderate]), "fundus")
    assert "One run only" in one and one.startswith("### Moderate")  # one run: no test, so no close call
    derm = report.answer_markdown(
        fake_output([np.eye(4)[1] * 0.8 + 0.05], ["NV", "MEL", "BCC", "BKL"]), "derm"
    )
    assert derm.startswith("### Melanoma (MEL) — probability 85 %")
    assert report.percent(0.004) == "<1 %" and report.percent(0.555) == "56 %"


def test_a_close_call_is_called_close_with_both_probabilities():
    severe, pdr = np.eye(5)[3] * 0.62 + 0.08, np.eye(5)[4] * 0.62 + 0.08
    split = fake_output([severe] * 5 + [pdr] * 3)  # 5 against 3: 47 % and 31 %, the t-test says no
    card = report.answer_markdown(split, "fundus")
    assert card.startswith("### Close call between Severe non-proliferative DR (Severe) and Proliferative DR")
    assert "probability 47 % and 31 %" in card and "More runs (Settings) may separate them." in card
    assert "do not consistently put one above the other" in card and "percentage points" not in card
    near = fake_output([severe * 0.5 + pdr * 0.5 + np.eye(5)[3] * 0.04] * 64)  # agree, 4 points apart
    card = report.answer_markdown(near, "fundus")
    assert card.startswith("### Close call between") and "less than 10 percentage points" in card
    assert "Even 64 runs do not separate them" in card and "consistently" not in card


def fundus_checks(monkeypatch, flagged):
    """The fundus model's check says ``flagged``, the derm model's accepts every image; the number of
    checks run per task is counted."""
    calls = {"fundus": 0, "derm": 0}

    def check(self, image):
        calls[self.config.task] += 1
        bad = flagged and self.config.task == "fundus"
        return {"available": True, "score": 9.5 if bad else 1.0, "threshold": 5.0, "flagged": bad}

    monkeypatch.setattr(DiffMICPipeline, "check_distribution", check)
    return calls


@pytest.fixture
def fundus_flags_everything(monkeypatch):
    """The fundus model flags every image; the derm model has a check and accepts it."""
    return fundus_checks(monkeypatch, True)


def test_a_flagged_image_cannot_be_assessed_and_its_answer_is_folded_away(
    two_models, example, fundus_flags_everything, monkeypatch
):
    chains = []
    original_chain = DiffMICPipeline.chain
    monkeypatch.setattr(
        DiffMICPipeline,
        "chain",
        lambda self, *a, **k: chains.append(self.config.task) or original_chain(self, *a, **k),
    )
    last = run(Diagnosis(two_models), example, "fundus", "DDIM", 5, 2, 0)[-1]
    card = last["answer"]
    shown, folded = card.split("<details", 1)
    assert shown.startswith("### Cannot be assessed by this model")
    assert (
        "This image does not look like the colour fundus images this model was trained on — "
        "it cannot be assessed by this model." in shown
    )
    assert "<strong>derm</strong> (Dermoscopy: skin-lesion type (4 classes)) model accepts it" in shown
    label = report.full_name("fundus", last["json"]["label"])
    assert label not in shown and "probability" not in shown  # no class answer outside the fold
    assert "Show the model's answer anyway (unreliable)</summary>" in folded and label in folded
    assert "**Unreliable:**" in folded and "not for clinical use" in card
    assert "flagged" in last["details"] and "threshold 5" in last["details"]
    assert last["json"]["ood"]["flagged"] is True and last["json"]["assessable"] is False
    assert chains == ["fundus"]  # the suggestion ran the derm model's check alone, no chain
    answer = Diagnosis(two_models).predict(example, "fundus", "ddim", 2, 1, 0)
    assert answer["ood"]["score"] == 9.5 and answer["assessable"] is False
    checks = dict(fundus_flags_everything)
    run(Diagnosis(two_models), example, "fundus", "DDIM", 5, 2, 1)
    assert fundus_flags_everything["derm"] == checks["derm"]  # cached per image: not asked again
    assert two_models.models_accepting(Image.open(example).convert("RGB"), "derm") == []  # fundus flags it


def test_no_other_model_accepting_is_said(registry, example, fundus_flags_everything):
    card = run(Diagnosis(registry), example, "fundus", "DDIM", 5, 1, 0)[-1]["answer"]
    assert "cannot be assessed" in card and "None of the other bundled models accepts it either." in card
    assert "accepts it:" not in card


def test_the_chart_ends_at_the_cards_numbers_on_a_streamed_run(registry, example):
    frames = run(Diagnosis(registry, interval_s=0.0), example, "fundus", "DDPM", 100, 6, 4)
    last = frames[-1]
    probs = last["json"]["probabilities"]
    lines = {t.name: t for t in last["trajectory"].data if t.mode == "lines" and t.legendgroup}
    assert list(lines) == FUNDUS
    for name, p in probs.items():
        assert lines[name].y[-1] == pytest.approx(p, abs=5e-5) and lines[name].x[-1] == 0
    call = last["json"]["uncertainty"]["close_call"]
    top = report.percent(lines[call["classes"][0]].y[-1])
    assert f"probability {top}" in last["answer"]  # the card's percentage is the chart's last point
    assert len(frames) > 10  # streamed: step frames between the first and the last


# ---------------------------------------------------------------- Diagnose: the replay
class Clock:
    """A stand-in for time: each reading is ``tick`` seconds after the one before."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def replayed(diagnosis: Diagnosis, request, start: int) -> list[dict]:
    """Play pressed with the slider at ``start``, then every tick until the timer stops."""
    first = dict(zip(REPLAY_OUTPUTS, diagnosis.replay_play(request, start), strict=True))
    frames, step, clock = [first], start, first["replay_clock"]
    while True:
        step = frames[-1]["replay"] if not is_skip(frames[-1]["replay"]) else step
        clock = frames[-1]["replay_clock"] if not is_skip(frames[-1]["replay_clock"]) else clock
        if not frames[-1]["replay_timer"].active:
            return frames
        frames.append(
            dict(zip(REPLAY_OUTPUTS, diagnosis.replay_tick(request, step, False, clock), strict=True))
        )


def test_the_replay_is_the_pipelines_trajectory_and_ends_at_the_cards_numbers(registry, example, monkeypatch):
    outputs = []
    result = DiffMICPipeline.result

    def keep(self, *args, **kwargs):
        outputs.append(result(self, *args, **kwargs))
        return outputs[-1]

    monkeypatch.setattr(DiffMICPipeline, "result", keep)
    diagnosis = Diagnosis(registry, clock=Clock(0.01))  # a quick server: every frame is shown
    frames = run(diagnosis, example, "fundus", "DDPM", 100, 4, 2)
    first, last = frames[0], frames[-1]
    assert first["replay_box"]["visible"] is False and first["replay"]["value"] == 0
    assert (
        last["replay_box"]["visible"] is True and last["replay"]["value"] == last["replay"]["maximum"] == 100
    )
    request = last["figure"]
    traj = outputs[-1].trajectory
    assert request.trajectory is traj  # the record replayed is the pipeline's own, not a second one
    played = replayed(diagnosis, request, 100)  # at the end: Play starts again from the start
    steps = [f["replay"] for f in played]
    assert steps == list(frame_steps(100)) and played[-1]["replay_timer"].active is False
    assert played[0]["bars"].data[0].x == pytest.approx(traj.prior, abs=1e-4)  # the start: the prior
    for frame in played[1:]:
        k = frame["replay"]
        mean = traj.probs[k - 1].mean(0)  # the card's statistic after k steps, from the pipeline's record
        bars = frame["bars"].data
        assert bars[0].x == pytest.approx(mean, abs=1e-4)
        assert bars[1].x == pytest.approx(traj.prior, abs=1e-4)  # the prior marker stays on the bars
        lines = [t for t in frame["trajectory"].data if t.mode == "lines" and t.legendgroup]
        assert lines[0].x[-1] == traj.t[k - 1] and lines[0].y[-1] == pytest.approx(mean[0], abs=1e-4)
        assert len(lines[0].x) <= REPLAY_POINTS + 1  # thinned for transport, the latest step kept
        assert frame["trajectory"].layout.shapes[0].x0 == traj.t[k - 1]  # the "now" line
    card = list(last["json"]["probabilities"].values())
    assert played[-1]["bars"].data[0].x == pytest.approx(card, abs=5e-5)
    assert played[-1]["bars"].layout.title.text == "Final probabilities"
    # the slider moved by hand: the figures of that step, with each run as a thin line when asked
    trajectory, bars, clock = diagnosis.replay_at(request, 37, True)
    runs = [t for t in trajectory.data if t.name and ", run " in t.name]
    assert len(runs) == 4 * 5 and runs[0].x[-1] == traj.t[36] and clock[1] == 37
    assert runs[3].y[-1] == pytest.approx(traj.probs[36, 3, 0], abs=1e-3)
    assert bars.layout.title.text == f"After 37 of 100 steps (t = {traj.t[36]})"
    assert all(is_skip(v) for v in diagnosis.runs_after_run(request, 100, False))  # box not ticked: nothing
    shown = diagnosis.runs_after_run(request, 100, True)[0]
    assert [t.name for t in shown.data if t.name and ", run " in t.name] == [t.name for t in runs]
    # Play mid-way carries on from there; before any run there is nothing to replay
    going = dict(zip(REPLAY_OUTPUTS, diagnosis.replay_play(request, 50), strict=True))
    assert (
        is_skip(going["replay"]) and going["replay_timer"].active is True and going["replay_clock"][1] == 50
    )
    nothing = dict(zip(REPLAY_OUTPUTS, diagnosis.replay_tick(None, 50), strict=True))
    assert nothing["replay_timer"].active is False and is_skip(nothing["trajectory"])
    assert diagnosis.replay_play(None, 0)[REPLAY_OUTPUTS.index("replay_timer")].active is False


def test_the_stream_draws_the_pipelines_trajectory_and_records_none(registry, example, monkeypatch):
    """The pipeline's trajectory is the one record: each streamed state carries it (the output's own), and
    a Diagnose run records each step once, in the pipeline."""
    pipe = registry.get("fundus").pipe
    items = list(pipe.run(example, SamplingOptions("ddim", 6, 3, 0)))
    states, out = items[1:-1], items[-1]
    assert all(isinstance(s, RecordedState) and s.trajectory is out.trajectory for s in states)
    assert [s.trajectory.steps_done for s in states][:2] == [6, 6]  # the same object, filled by the end
    records = []
    record = Trajectory.record
    monkeypatch.setattr(Trajectory, "record", lambda self, state: (records.append(self), record(self, state)))
    last = run(Diagnosis(registry, interval_s=0.0), example, "fundus", "DDIM", 6, 3, 0)[-1]
    assert len(records) == 6 and len({id(t) for t in records}) == 1  # one trajectory, one record a step
    assert last["figure"].trajectory is records[0]  # the figure, the replay and the downloads read it


def test_the_replay_keeps_its_pace_and_the_last_step_of_any_run(registry, example):
    quick, slow = Diagnosis(registry, clock=Clock(0.01)), Diagnosis(registry, clock=Clock(1.0))
    for steps in (7, 100):
        request = run(quick, example, "fundus", "DDIM", steps, 2, 0)[-1]["figure"]
        played = replayed(quick, request, steps)
        assert played[-1]["replay"] == steps and played[-1]["bars"].layout.title.text == "Final probabilities"
        assert [f["replay"] for f in played] == list(frame_steps(steps))
        # a server or browser a second late at every tick: frames are skipped, the pace and the end kept
        late = [f["replay"] for f in replayed(slow, request, steps)]
        assert late[0] == 0 and late[-1] == steps and len(late) <= 2 + REPLAY_SECONDS
    assert frame_steps(1000)[-1] == 1000 and len(frame_steps(1000)) == REPLAY_FRAMES + 1
    assert list(frame_steps(7)) == list(range(8))
    assert frame_at(1000, 0, (0.0, 0), REPLAY_SECONDS / 2) == 500 and frame_at(1000, 0, None, 99.0) == 28
    assert frame_at(1000, 500, (0.0, 0), 99.0) == 1000 and frame_at(1000, 1000, (0.0, 0), 99.0) is None


# ---------------------------------------------------------------- Diagnose: the case report
def pdf_text(path: str) -> tuple[str, int]:
    """The text of a one-page PDF (whitespace collapsed) and the number of images on it."""
    from pypdf import PdfReader

    (page,) = PdfReader(path).pages
    return " ".join(page.extract_text().split()), len(page.images)


def test_the_case_report_holds_the_card_the_numbers_the_maps_and_the_model(registry, example):
    last = run(Diagnosis(registry), example, "fundus", "DDIM", 10, 4, 2)[-1]
    assert is_skip(Diagnosis.case_report(None))
    files = Diagnosis.case_report(last["figure"])
    assert files[:2] == last["downloads"] and files[-1].endswith("-report.pdf")
    text, images = pdf_text(files[-1])
    assert images >= 3  # the model's view, the evidence map, the ROIs
    head = last["answer"].split("\n\n")[0].removeprefix("### ")
    assert "DiffMIC case report" in text and head in text  # the card's own words
    pipe = registry.get("fundus").pipe
    assert f"config hash {config_hash(pipe.config)}" in text and "bundled fundus model" in text
    assert re.search(r"Time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    answer = last["json"]
    for name, p in answer["probabilities"].items():
        sd = 100 * answer["uncertainty"]["std"][name]
        row = f"{report.full_name('fundus', name)} {100 * p:5.1f}% {sd:5.1f}"
        assert " ".join(row.split()) in text
        fused = answer["prior"]["fused"][name]
        assert f"{100 * fused:5.1f}%".strip() in text
    assert "Distribution check: not available" in text and "not for clinical use" in text
    assert Diagnosis.figure(last["figure"])[-1] == files[-1]  # the figure joins the downloads, the PDF stays


def test_the_case_report_of_a_flagged_image_says_it_cannot_be_assessed(
    two_models, example, fundus_flags_everything
):
    last = run(Diagnosis(two_models), example, "fundus", "DDIM", 5, 2, 0)[-1]
    text, _ = pdf_text(Diagnosis.case_report(last["figure"])[-1])
    statement = text.index("it cannot be assessed by this model")
    assert statement < text.index("The model's answer anyway (unreliable):")
    assert "derm (Dermoscopy" in text and "Distribution check: flagged" in text


# ---------------------------------------------------------------- Diagnose: the maps
def test_map_controls_redraw_without_a_new_run(registry, example):
    data = run(Diagnosis(registry), example, "fundus", "DDIM", 3, 1, 0)[-1]["maps"]
    image_only = heat_image(data, DEFAULT_HEAT, 0.0)
    assert np.array_equal(image_only, original(data.pixels))
    cam = heat_image(data, DEFAULT_HEAT, 0.7)
    assert data.gradcam is None  # the run did not pay for Grad-CAM, nor did the default map
    grad = heat_image(data, "Grad-CAM", 0.7)
    assert cam.shape == (MAP_SIDE, MAP_SIDE, 3) and not np.array_equal(cam, image_only)
    assert not np.array_equal(cam, grad)
    # made once, on first use, and the same map the pipeline's own Grad-CAM gives
    pipe = registry.get("fundus").pipe
    wanted = pipe(example, SamplingOptions(sampler="ddim", steps=3, samples=1), explain=True).gradcam
    assert data.make_gradcam is None and np.allclose(data.gradcam, wanted, atol=1e-5)
    assert is_skip(Diagnosis.redraw_heat(None, DEFAULT_HEAT, 0.5))


# ---------------------------------------------------------------- Diagnose: bad inputs
@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello, this is not an image", "not a recognised image"),
        (b"", "empty"),
        (None, "upload an image"),
    ],
)
def test_bad_uploads_show_a_message(registry, tmp_path, content, message):
    path = None
    if content is not None:
        path = tmp_path / "upload.png"
        path.write_bytes(content)
        path = str(path)
    frames = list(Diagnosis(registry).run(path, "fundus", "DDPM", 100, 1, 0))
    assert len(frames) == 1 and message in shown_error(frames[0])
    assert_cleared(as_dict(frames[0]))
    with pytest.raises(gr.Error, match=message):
        Diagnosis(registry).predict(path, "fundus", "DDPM", 100, 1, 0)


def test_corrupt_png_shows_a_message_beside_the_upload(registry, tmp_path):
    good = random_png(tmp_path / "good.png", 64).read_bytes()
    bad = tmp_path / "broken.png"
    bad.write_bytes(good[: len(good) // 2])
    frames = list(Diagnosis(registry).run(str(bad), "fundus", "DDPM", 100, 1, 0))
    assert "broken.png" in shown_error(frames[0]) and "corrupt or truncated" in shown_error(frames[0])
    preview, *outputs = Diagnosis(registry).preview(str(bad))
    assert preview is None and "corrupt" in shown_error(tuple(outputs))


def test_dicom_upload_runs(registry, tmp_path):
    dicom_bytes = pytest.importorskip("tests.test_imageio").dicom_bytes
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom_bytes(pixels))
    preview, *_ = Diagnosis(registry).preview(str(path))
    assert preview.shape == (64, 64, 3)
    last = run(Diagnosis(registry), str(path), "fundus", "DDIM", 10, 1, 0)[-1]
    assert last["json"]["label"] in FUNDUS


@pytest.mark.parametrize(
    "args, message",
    [
        (("ddpm", 101, 1, 0), "at most 100 steps"),
        (("ddpm", 10, 0, 0), "samples must be between 1 and 64"),
        (("euler", 10, 1, 0), "unknown sampler"),
        (("ddim", "ten", 1, 0), "whole numbers"),
        (("ddim", 10, 1, -1), "non-negative"),
    ],
)
def test_bad_settings_show_a_message(registry, example, args, message):
    frames = list(Diagnosis(registry).run(example, "fundus", *args))
    assert message in shown_error(frames[0])


def test_controls_become_one_sampling_options():
    assert sampling_options("DDIM", None, None, None, 100) == SamplingOptions("ddim", None, 1, 0)
    assert sampling_options("ddpm", 0, 8, 3, 100) == SamplingOptions("ddpm", None, 8, 3)
    assert sampling_options("DDIM", 50.0, "4", 1, 100) == SamplingOptions("ddim", 50, 4, 1)
    with pytest.raises(UserError, match="whole numbers"):
        sampling_options("ddim", 2.5, 1, 0, 100)


def test_missing_model_and_failing_handler_show_a_message(registry, example, monkeypatch):
    assert "may still be training" in shown_error(
        list(Diagnosis(registry).run(example, "derm", "DDPM", 1, 1, 0))[0]
    )

    def broken(choice):
        raise RuntimeError("boom")

    monkeypatch.setattr(registry, "get", broken)
    frames = list(Diagnosis(registry).run(example, "fundus", "DDPM", 1, 1, 0))
    assert "the run failed (RuntimeError: boom)" in shown_error(frames[0])


# ---------------------------------------------------------------- Learn
def test_forward_process_comes_from_the_package(registry):
    pipe = registry.get("fundus").pipe
    prior = np.array([0.1, 0.2, 0.4, 0.2, 0.1], np.float32)
    y0 = one_hot(3, 5)
    fp = forward_process(pipe, y0, prior, FUNDUS)
    ab = pipe.model.diffusion.alphas_cumprod.numpy()
    expected = np.sqrt(ab)[:, None] * y0 + (1 - np.sqrt(ab))[:, None] * prior
    assert fp.T == 100 and np.allclose(fp.mean, expected, atol=1e-5)
    assert np.allclose(fp.std, np.sqrt(1 - ab), atol=1e-5)
    assert fp.draws.shape == (100, 24, 5)
    assert np.allclose(fp.draws[0], y0, atol=0.1)  # almost no noise at t = 0
    assert fp.frames[0] == 0 and fp.frames[-1] == 99 and np.all(np.diff(fp.frames) > 0)


def lesson_of(lessons: Lessons, *args) -> dict:
    return dict(zip(LEARN_OUTPUTS, lessons.run(*args), strict=True))


def test_lessons_show_plays_both_ways_and_scrubs(registry, settings, example):
    lessons = Lessons(registry, settings)
    out = lesson_of(lessons, "fundus", example)
    forward, reverse, sched, lesson = out["forward"], out["reverse"], out["schedule"], out["lesson"]
    assert "t = 0 of 100" in forward.layout.title.text and out["t"]["maximum"] == 99
    assert "t = 0," in reverse.layout.title.text and "t = 0" in sched.layout.title.text
    assert len([tr for tr in out["ddim"].data if tr.mode == "lines"][0].x) == 50  # from its first step
    assert out["without_prior"].data[-1].name.startswith("zero mean")
    assert "one-hot of **" in out["forward_note"] and "true label" in out["forward_note"]
    assert "DDPM" in out["sampler_note"] and "DDIM" in out["sampler_note"]
    assert "zero mean" in out["prior_note"]
    assert out["error"]["visible"] is False and out["shown"] == shown_key("fundus", example)
    assert all(is_skip(out[name]) for name in ("image", "favour", "blend"))  # an image was given
    # scrub: the three figures follow the slider
    scrubbed = dict(zip(SCRUB_OUTPUTS, lessons.scrub(lesson, 40), strict=True))
    assert "t = 40 of 100" in scrubbed["forward"].layout.title.text
    assert (
        "t = 40," in scrubbed["reverse"].layout.title.text
        and "t = 40" in scrubbed["schedule"].layout.title.text
    )
    # play forward: each tick moves t up to the next frame; the timer stops after the last
    tick = dict(zip(FRAME_OUTPUTS, lessons.advance(lesson, 0, "forward"), strict=True))
    frames = lesson.forward.frames
    assert tick["t"] == frames[1] and f"t = {frames[1]} of" in tick["forward"].layout.title.text
    assert tick["timer"].active is True
    end = dict(zip(FRAME_OUTPUTS, lessons.advance(lesson, 99, "forward"), strict=True))
    assert is_skip(end["t"]) and end["timer"].active is False
    restart = dict(zip(PLAY_OUTPUTS, lessons.play_forward(lesson, 99), strict=True))
    assert restart["t"] == 0 and restart["direction"] == "forward" and restart["timer"].active is True
    # play reverse: t falls, from T - 1 again when at 0, and the reverse figure shows the chain at that t
    back = dict(zip(PLAY_OUTPUTS, lessons.play_reverse(lesson, 0), strict=True))
    assert (
        back["t"] == 99 and back["direction"] == "reverse" and "t = 99," in back["reverse"].layout.title.text
    )
    tick = dict(zip(FRAME_OUTPUTS, lessons.advance(lesson, 99, "reverse"), strict=True))
    assert tick["t"] == frames[-2] and f"t = {frames[-2]}," in tick["reverse"].layout.title.text
    going = dict(zip(PLAY_OUTPUTS, lessons.play_reverse(lesson, 50), strict=True))
    assert is_skip(going["t"]) and going["timer"].active is True  # mid-way: carries on from where it is
    last = dict(zip(FRAME_OUTPUTS, lessons.advance(lesson, frames[1], "reverse"), strict=True))
    assert last["t"] == 0 and last["timer"].active is False
    # the tab opened again: the figures are already there
    assert all(is_skip(v) for v in lessons.on_open(out["shown"], "fundus", example, OWN_PRIOR, 0))


def test_the_reverse_figure_is_the_lessons_chain_in_label_space(registry, settings, example):
    out = lesson_of(Lessons(registry, settings), "fundus", example)
    lesson = out["lesson"]
    chain = lesson.reverse
    for t in (99, 37, 0):
        fig = reverse_figure(lesson, t)
        i = int(np.where(chain.trajectory.t == t)[0][0])
        dots = next(tr for tr in fig.data if tr.name == "each run's y")
        assert np.allclose(np.asarray(dots.y), np.round(chain.labels[i], 3).ravel())
        bars = next(tr for tr in fig.data if tr.type == "bar")
        assert np.allclose(bars.y, chain.labels[i].mean(0), atol=1e-4)
        shown = next(tr for tr in fig.data if tr.type == "scatter" and tr.mode == "text").text
        assert list(shown) == [report.percent(p) for p in chain.trajectory.probs[i].mean(0)]
        centre = next(tr for tr in fig.data if tr.name.startswith("prior"))
        assert np.allclose(centre.y, chain.prior, atol=1e-4)
    # at t = 0 the figure says the answer the DDPM panel's caption gives
    k = chain.answer
    assert f"(probability {list(shown)[k]})" in out["sampler_note"].split(" · ")[0]
    assert "t = 0" in out["reverse"].layout.title.text


def test_the_lesson_opens_on_an_image_whose_prior_differs_from_its_label(registry, settings):
    pipe = registry.get("fundus").pipe
    examples = [e for e in list_examples(settings.assets_dir) if e.task == "fundus"]
    names = list(pipe.config.class_names)
    truth = {str(e.path): FUNDUS.index(e.label) for e in examples}
    prior = {path: pipe.prepare(path).conditioning.prior("fused")[0].numpy() for path in truth}
    wrong = [path for path in truth if int(np.argmax(prior[path])) != truth[path]]
    assert wrong, "the test needs an example whose prior favours another class"
    lessons = Lessons(registry, settings)
    opened = lessons.on_open(None, "fundus", str(examples[0].path), OWN_PRIOR, 0)  # the first opening
    out = dict(zip(LEARN_OUTPUTS, opened, strict=True))
    chosen = out["image"]["value"]
    assert chosen in wrong and out["image"]["choices"] == lessons.image_choices("fundus")
    assert chosen == min(wrong, key=lambda path: prior[path][truth[path]])
    assert out["favour"]["value"] == OWN_PRIOR and out["favour"]["choices"] == [OWN_PRIOR, *names]
    assert out["blend"]["value"] == 0 and out["shown"] == shown_key("fundus", chosen)
    top = names[int(np.argmax(prior[chosen]))]
    assert (
        f"favours **{top}**" in out["intro"]
        and report.full_name("fundus", names[truth[chosen]]) in out["intro"]
    )
    forward = out["lesson"].forward
    assert np.argmax(forward.y0) == truth[chosen] and np.allclose(forward.prior, prior[chosen], atol=1e-6)
    assert np.allclose(out["lesson"].reverse.prior, prior[chosen], atol=1e-6)
    # another model menu choice chooses again (here the same model: the same image, the prior reset)
    again = dict(zip(LEARN_OUTPUTS, lessons.for_model("fundus"), strict=True))
    assert again["image"]["value"] == chosen and again["favour"]["value"] == OWN_PRIOR


def test_the_prior_control_moves_the_forward_process_and_the_chains(registry, settings, example):
    lessons = Lessons(registry, settings)
    own = lesson_of(lessons, "fundus", example)
    own_prior = own["lesson"].forward.prior
    mild = lesson_of(lessons, "fundus", example, "Mild", 0.3)
    expected = 0.7 * one_hot(FUNDUS.index("Mild"), 5) + 0.3 / 5
    lesson = mild["lesson"]
    assert np.allclose(lesson.forward.prior, expected) and np.allclose(lesson.reverse.prior, expected)
    sab = np.sqrt(registry.get("fundus").pipe.model.diffusion.alphas_cumprod.numpy()[-1])
    assert np.allclose(lesson.forward.mean[-1], sab * lesson.forward.y0 + (1 - sab) * expected, atol=1e-5)
    diamonds = [tr for tr in mild["ddpm"].data if (tr.name or "").startswith("prior")][0]
    assert np.allclose(diamonds.y, expected, atol=1e-4)
    assert not np.allclose(lesson.reverse.labels, own["lesson"].reverse.labels)  # the chain followed
    assert "all on Mild, blended 30% towards uniform" in mild["forward_note"]
    assert mild["shown"] == shown_key("fundus", example, "Mild", 0.3) != own["shown"]
    zero = mild["lesson"], own["lesson"]
    assert np.array_equal(*(z.forward.y0 for z in zero))  # the truth stays the truth
    uniform = lesson_of(lessons, "fundus", example, OWN_PRIOR, 1.0)["lesson"]
    assert np.allclose(uniform.reverse.prior, 0.2) and not np.allclose(own_prior, 0.2)
    # the zero-mean chain is the same whatever prior is chosen
    assert np.array_equal(own["without_prior"].data[0].y, mild["without_prior"].data[0].y)


def test_learn_handlers_return_the_figures_by_name(registry, settings, example):
    lessons = Lessons(registry, settings)
    lesson = lesson_of(lessons, "fundus", example)["lesson"]
    figures = lesson.figures(40)
    assert isinstance(figures, LessonFigures) and figures._fields == SCRUB_OUTPUTS
    assert set(SCRUB_OUTPUTS) <= set(FRAME_OUTPUTS) & set(PLAY_OUTPUTS) & set(LEARN_OUTPUTS)
    scrubbed = dict(zip(SCRUB_OUTPUTS, lessons.scrub(lesson, 40), strict=True))
    for name in SCRUB_OUTPUTS:  # each output gets the figure of its own name
        assert scrubbed[name].layout.title.text == getattr(figures, name).layout.title.text
    image = lessons._image(example, registry.get("fundus").pipe)
    assert isinstance(image, LessonImage) and isinstance(image.image, DecodedImage)
    assert image.true_label == next(
        e.label for e in list_examples(settings.assets_dir) if str(e.path) == example
    )


def test_learn_offers_only_the_models_own_images(two_models, example):
    lessons = Lessons(two_models, two_models.settings)
    fundus = lessons.images_for("fundus")
    assert fundus["choices"] and all("/fundus/" in path for _, path in fundus["choices"])
    derm = lessons.images_for("derm")  # no derm examples: a generated derm image
    assert derm["choices"] == [("a generated derm image", "generated")] and derm["value"] == "generated"
    out = lesson_of(lessons, "derm", "generated")
    assert out["error"]["visible"] is False and "one-hot of **" in out["forward_note"]
    refused = lesson_of(lessons, "derm", example)  # another task's image
    assert "pick one of the derm's own example images" in refused["error"]["value"]
    assert not refused["forward"].data and not refused["reverse"].data  # the stale figures are cleared
    assert refused["lesson"] is None and refused["shown"] is None
    generated = dict(zip(LEARN_OUTPUTS, lessons.for_model("derm"), strict=True))  # its generated image
    assert generated["image"]["value"] == "generated" and generated["error"]["visible"] is False


def test_learn_says_how_the_model_does_when_its_figures_are_stored(two_models):
    lessons = Lessons(two_models, two_models.settings)
    stored = two_models.settings.weights_dir / "derm" / "evaluation.json"
    assert (
        two_models.evaluation_of("derm") is None
        and "held-out" not in lesson_of(lessons, "derm", "generated")["prior_note"]
    )
    figures = {"n": 500, "samples": 8, "accuracy": {"fused": 0.8, "diffmic_single": 0.79, "diffmic": 0.85}}
    stored.write_text(json.dumps(figures))
    try:
        note = lesson_of(lessons, "derm", "generated")["prior_note"]
        assert "On 500 held-out generated images this model is right" in note
        assert (
            "the prior alone 80%" in note and "DiffMIC (8 chains averaged) 85%" in note and "CNN" not in note
        )
        assert "No classifier" not in note  # no ceiling stored: none claimed
        stored.write_text(json.dumps({**figures, "ceiling": 0.932}))
        assert (
            "No classifier can do better than 93% on these images"
            in lesson_of(lessons, "derm", "generated")["prior_note"]
        )
        stored.write_text("{not json")
        assert two_models.evaluation_of("derm") is None  # a broken file is ignored, not a crash
    finally:
        stored.unlink()


# ---------------------------------------------------------------- Evaluate
def test_evaluate_a_zipped_dataset(registry, tmp_path):
    zip_path = make_dataset_zip(tmp_path, n_per_class=2)
    metrics, confusion, table, table_csv, error = Evaluation(registry).run(
        str(zip_path), "fundus", "DDIM", 10, 1
    )
    assert error["visible"] is False
    assert "Accuracy" in metrics and "macro-F1" in metrics and "quadratic-weighted κ" in metrics
    assert "10 images" in metrics and "DDIM, 10 steps, 1 run(s) per image" in metrics
    assert np.asarray(confusion.data[0].z).sum() == 10
    assert len(table["value"]) == 10 and table["headers"] == [
        "file",
        "true class",
        "predicted class",
        "probability",
        "correct",
    ]
    rows = list(csv.reader(open(table_csv)))
    assert len(rows) == 11 and rows[1][0].endswith(".png")


def test_evaluate_on_generated_test_images(registry, monkeypatch):
    monkeypatch.setattr("app.evaluation.GENERATED_TEST_IMAGES", 10)
    metrics, confusion, table, table_csv, error = Evaluation(registry).run_generated("fundus", "DDIM", 5, 1)
    assert error["visible"] is False and "10 generated test images" in metrics
    best = best_possible("fundus", 10)  # the Bayes ceiling of exactly these ten images
    row = next(line for line in metrics.splitlines() if line.startswith("| **DiffMIC** |"))
    assert row.split("|")[3].strip() == f"{best:.3f}" and "irreducible" in metrics  # beside the accuracy
    assert "best possible" not in metrics_markdown_of_a_zip(registry)
    assert [row[0] for row in table["value"][:2]] == ["generated #1", "generated #2"]
    assert generated_note("fundus")[1] is True
    note, usable = generated_note("custom")
    assert usable is False and "only for the built-in tasks" in note
    assert Evaluation(registry).generated_button("fundus")[0]["interactive"] is True


def test_evaluate_refuses_hostile_and_wrong_zips_and_clears_old_results(registry, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.png", b"x")
    metrics, confusion, table, table_csv, error = Evaluation(registry).run(str(evil), "fundus", "DDIM", 10, 1)
    assert "outside" in error["value"] and error["visible"] is True
    assert metrics == "" and not confusion.data and table["value"] == [] and table_csv is None
    not_zip = random_png(tmp_path / "image.zip")
    assert "not a valid zip" in Evaluation(registry).run(str(not_zip), "fundus", "DDIM", 10, 1)[-1]["value"]
    other_task = make_dataset_zip(tmp_path / "derm", n_per_class=1, task="derm")
    message = Evaluation(registry).run(str(other_task), "fundus", "DDIM", 10, 1)[-1]["value"]
    assert "none of the dataset's classes" in message
    assert "upload a .zip" in Evaluation(registry).run(None, "fundus", "DDIM", 10, 1)[-1]["value"]


def test_dataset_helpers(tmp_path):
    (tmp_path / "only" / "A").mkdir(parents=True)
    (tmp_path / "only" / "B").mkdir()
    assert dataset_root(tmp_path) == tmp_path / "only"
    assert [class_index(n, FUNDUS) for n in ["0_No DR", "Moderate", "AKIEC"]] == [0, 2, None]


def metrics_markdown_of_a_zip(registry) -> str:
    """The Evaluate tab's metrics for an uploaded dataset (no ceiling is known for it)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        archive = make_dataset_zip(Path(folder) / "fundus", n_per_class=1, task="fundus")
        return Evaluation(registry).run(str(archive), "fundus", "DDIM", 5, 1)[0]
