"""The app's handlers called in-process with a tiny model: streaming, API, bad inputs, Learn, Evaluate."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from app.diagnose import OUTPUTS, Diagnosis, check_params
from app.evaluation import Evaluation, dataset_root, map_labels
from app.figures import trajectory_figure
from app.learn import Lessons, forward_process, forward_timesteps, one_hot
from app.models import ModelRegistry
from app.settings import Settings
from app.ui import build_demo
from diffmic.chain import DenoiseState
from diffmic.hub import ModelLoadError
from diffmic.trajectory import MAX_PLOT_POINTS, Trajectory
from tests.test_app_support import FUNDUS, make_app_dirs, make_dataset_zip, random_png


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread, as the app runs: tiny ops on a busy 2-core machine crawl with two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return make_app_dirs(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings)


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


# ---------------------------------------------------------------- models
def test_registry_offers_bundled_models_and_says_which_are_missing(registry):
    assert registry.available() == ["fundus"]
    assert registry.default_choice() == "fundus"
    status = registry.status_markdown()
    assert "**fundus** ✓" in status and "**derm** missing" in status and "placenta" in status
    labels = dict((v, k) for k, v in registry.choices())
    assert "(missing)" in labels["derm"] and "(missing)" not in labels["fundus"]
    assert registry.timesteps("fundus") == 100
    with pytest.raises(ModelLoadError, match="bundled derm model is missing"):
        registry.get("derm")
    odd = registry.get("../../etc")
    assert "neither a bundled model" in odd.notice and odd.loaded is registry.get("fundus").loaded


def test_models_are_cached(registry):
    assert registry.get("fundus").loaded is registry.get("fundus").loaded


def test_unreachable_hub_falls_back_to_the_bundled_model(registry):
    selection = registry.get("someone/diffmic-fundus")  # HF_HUB_OFFLINE=1 in the tests
    assert selection.loaded is registry.get("fundus").loaded
    assert (
        "Could not load `someone/diffmic-fundus`" in selection.notice
        and "bundled **fundus**" in selection.notice
    )


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


# ---------------------------------------------------------------- Diagnose
def test_run_streams_a_first_frame_then_the_answer(registry, example):
    frames = [as_dict(f) for f in Diagnosis(registry).run(example, "fundus", "DDPM", 100, 4, 0)]
    first, last = frames[0], frames[-1]
    assert first["saliency"].shape[-1] == 3 and first["rois"].shape[-1] == 3
    assert len(first["crops"]) == 3 and first["crops"][0][1].startswith("#")
    assert first["label"] is None and first["error"]["visible"] is False
    assert "Step 0" in first["counter"]
    assert last["label"].keys() == set(FUNDUS)
    assert "Done: 100 / 100 steps" in last["counter"]
    assert "Demo weights trained on synthetic images" in last["summary"]
    assert "global prior" in last["summary"] and "Uncertainty over 4 samples" in last["summary"]
    assert last["gradcam"].shape == first["saliency"].shape
    assert last["json"]["label"] in FUNDUS and last["json"]["steps"] == 100
    for middle in frames[1:-1]:
        assert is_skip(middle["saliency"]) and is_skip(middle["label"])


def test_downloads_hold_the_whole_trajectory(registry, example):
    last = as_dict(list(Diagnosis(registry).run(example, "fundus", "DDIM", 20, 3, 1))[-1])
    csv_path, json_path, png_path = last["downloads"]
    rows = list(csv.reader(io.StringIO(open(csv_path).read())))
    assert rows[0][:2] == ["step", "t"] and len(rows[0]) == 2 + 3 * 5
    assert len(rows) == 1 + 20 and rows[-1][1] == "0"
    payload = json.loads(open(json_path).read())
    assert payload["prediction"] == last["json"]
    assert np.asarray(payload["trajectory"]["probabilities"]).shape == (3, 20, 5)
    with Image.open(png_path) as im:
        assert im.format == "PNG" and im.size[0] >= 1200


def test_stream_is_throttled(registry, example):
    diagnosis = Diagnosis(registry, interval_s=0.0)
    assert len(list(diagnosis.run(example, "fundus", "DDPM", 100, 1, 0))) == 1 + 99 + 1
    diagnosis = Diagnosis(registry, interval_s=60.0)
    assert len(list(diagnosis.run(example, "fundus", "DDPM", 100, 1, 0))) == 2


def test_predict_api_returns_the_cli_json(registry, example):
    answer = Diagnosis(registry).predict(example, "fundus", "ddim", 10, 3, 7)
    expected = (
        registry.get("fundus").model.predict(example, sampler="ddim", steps=10, samples=3, seed=7).to_json()
    )
    answer.pop("seconds"), expected.pop("seconds")
    assert answer == expected
    all_steps = Diagnosis(registry).predict(example, "fundus", "DDPM", 0, 1, 0)
    assert all_steps["steps"] == 100 and all_steps["sampler"] == "ddpm"


def test_same_seed_same_answer(registry, example):
    runs = [
        as_dict(list(Diagnosis(registry).run(example, "fundus", "DDPM", 100, 4, 3))[-1]) for _ in range(2)
    ]
    assert runs[0]["json"]["probabilities"] == runs[1]["json"]["probabilities"]


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
    with pytest.raises(gr.Error, match=message):
        Diagnosis(registry).predict(path, "fundus", "DDPM", 100, 1, 0)


def test_corrupt_png_shows_a_message(registry, tmp_path):
    good = random_png(tmp_path / "good.png", 64).read_bytes()
    bad = tmp_path / "broken.png"
    bad.write_bytes(good[: len(good) // 2])
    frames = list(Diagnosis(registry).run(str(bad), "fundus", "DDPM", 100, 1, 0))
    assert "broken.png" in shown_error(frames[0]) and "corrupt or truncated" in shown_error(frames[0])
    preview, box = Diagnosis(registry).preview(str(bad))
    assert preview is None and box["visible"] is True


def test_dicom_upload_runs(registry, tmp_path):
    dicom_bytes = pytest.importorskip("tests.test_imageio").dicom_bytes
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom_bytes(pixels))
    preview, box = Diagnosis(registry).preview(str(path))
    assert preview.shape == (64, 64, 3) and box["visible"] is False
    last = as_dict(list(Diagnosis(registry).run(str(path), "fundus", "DDIM", 10, 1, 0))[-1])
    assert last["json"]["label"] in FUNDUS


@pytest.mark.parametrize(
    "args, message",
    [
        (("ddpm", 101, 1, 0), "at most 100 steps"),
        (("ddpm", 10, 0, 0), "samples must be between"),
        (("euler", 10, 1, 0), "unknown sampler"),
        (("ddim", "ten", 1, 0), "whole numbers"),
        (("ddim", 10, 1, -1), "non-negative"),
    ],
)
def test_bad_settings_show_a_message(registry, example, args, message):
    frames = list(Diagnosis(registry).run(example, "fundus", *args))
    assert message in shown_error(frames[0])


def test_check_params_defaults(registry):
    params = check_params(registry.get("fundus").model, "DDIM", None, None, None)
    assert (params.sampler, params.steps, params.samples, params.seed) == ("ddim", None, 1, 0)


def test_missing_model_shows_a_message(registry, example):
    frames = list(Diagnosis(registry).run(example, "derm", "DDPM", 100, 1, 0))
    assert "may still be training" in shown_error(frames[0])


# ---------------------------------------------------------------- figures and trajectory
def test_trajectory_figure_is_decimated_and_banded(registry, example):
    model = registry.get("fundus").model
    states = list(model.stream(model.prepare(example), sampler="ddpm", samples=3, seed=0))
    traj = Trajectory(FUNDUS, 3, np.full(5, 0.2))
    for s in states:
        traj.record(s)
    fig = trajectory_figure(traj, 99)
    bands = [t for t in fig.data if t.fill == "toself"]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(bands) == 5 and len(lines) == 5
    assert all(len(t.x) <= MAX_PLOT_POINTS for t in lines)
    assert np.allclose(traj.mean[-1], states[-1].probs[0].mean(0).numpy(), atol=1e-6)
    s0 = states[0]
    single = Trajectory(FUNDUS, 1, np.full(5, 0.2))
    single.record(DenoiseState(0, 1, 0, s0.sample[:, :1], s0.pred_y0[:, :1], s0.probs[:, :1]))
    assert not [t for t in trajectory_figure(single, 99).data if t.fill == "toself"]


# ---------------------------------------------------------------- Learn
def test_forward_process_follows_q(registry):
    model = registry.get("fundus").model
    prior = np.array([0.1, 0.2, 0.4, 0.2, 0.1], np.float32)
    y0 = one_hot(3, 5)
    fp = forward_process(model, y0, prior)
    ab = model.diffusion.alphas_cumprod[torch.as_tensor(fp["ts"])].numpy()
    expected = np.sqrt(ab)[:, None] * y0 + (1 - np.sqrt(ab))[:, None] * prior
    assert np.allclose(fp["mean"], expected, atol=1e-5)
    assert np.allclose(fp["sd"], np.sqrt(1 - ab), atol=1e-5)
    assert fp["ts"][0] == 0 and fp["ts"][-1] == 99 and fp["draws"].shape == (len(fp["ts"]), 24, 5)
    assert list(forward_timesteps(1000)) == sorted(set(forward_timesteps(1000)))


def test_lessons(registry, settings, example):
    out = Lessons(registry, settings).run("fundus", example)
    forward, ddpm, ddim, with_prior, without_prior, *notes, error = out
    assert len(forward.frames) == len(forward_timesteps(100))
    assert len([t for t in ddim.data if t.mode == "lines"][0].x) == 50
    assert without_prior.data[-1].name == "zero mean"
    assert "Moderate" in notes[0] or "one-hot" in notes[0]
    assert "DDPM" in notes[1] and "DDIM" in notes[1] and "zero mean" in notes[2]
    assert error["visible"] is False
    bad = Lessons(registry, settings).run("derm", example)
    assert bad[-1]["visible"] is True and all(is_skip(v) for v in bad[:-1])


# ---------------------------------------------------------------- Evaluate
def test_evaluate_a_zipped_dataset(registry, tmp_path):
    zip_path = make_dataset_zip(tmp_path, n_per_class=2)
    metrics, confusion, table, table_csv, error = Evaluation(registry).run(
        str(zip_path), "fundus", "DDIM", 10, 1
    )
    assert error["visible"] is False
    assert "Accuracy" in metrics and "macro-F1" in metrics and "quadratic-weighted κ" in metrics
    assert np.asarray(confusion.data[0].z).sum() == 10
    assert len(table["value"]) == 10 and table["headers"][:3] == ["file", "true class", "predicted class"]
    rows = list(csv.reader(open(table_csv)))
    assert len(rows) == 11 and rows[1][0].endswith(".png")


def test_evaluate_refuses_hostile_and_wrong_zips(registry, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.png", b"x")
    out = Evaluation(registry).run(str(evil), "fundus", "DDIM", 10, 1)
    assert "outside" in out[-1]["value"] and all(is_skip(v) for v in out[:-1])
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
    assert map_labels(["0_No DR", "Moderate", "AKIEC"], FUNDUS) == [0, 2, None]
