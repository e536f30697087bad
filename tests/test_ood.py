"""The distribution check: fitting, scores of training-like and foreign images, saving and loading (folder and
Hub cache), models without it, the pipeline and the command line."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from diffmic.cli import main
from diffmic.conditioning import build_cache
from diffmic.data.datasets import ArrayDataset, folder_splits
from diffmic.data.fixtures import write_image_folder_fixture
from diffmic.hub import ModelLoadError
from diffmic.model import DiffMIC
from diffmic.ood import NO_OOD_CHECK, DistributionCheck, warning
from diffmic.ood_fit import fit_check, fit_distribution_check, fit_threshold, ledoit_wolf
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.helpers import random_image, tiny_model

FAST = SamplingOptions(sampler="ddim", steps=4, samples=2, seed=0)


def tinted_dataset(n: int, seed: int) -> ArrayDataset:
    """Orange-red noisy images (tinted like fundus photographs) whose class is a bright square's channel.

    The tiny test network is untrained; its features mostly see colour and texture statistics, which
    these images share and the foreign images below do not."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = np.array([200.0, 60.0, 20.0]) + rng.normal(0, 20, (n, 128, 128, 3))
    for i, y in enumerate(labels):
        r, c = rng.integers(0, 96, 2)
        images[i, r : r + 32, c : c + 32, y] = 255
    return ArrayDataset(np.clip(images, 0, 255).astype(np.uint8), labels)


def foreign_images() -> list[np.ndarray]:
    """Black, white and grey images and uniform noise."""
    flat = [np.full((128, 128, 3), v, np.uint8) for v in (0, 255, 128)]
    return flat + [random_image(128, seed=s) for s in (1, 2)]


@pytest.fixture(scope="module")
def model() -> DiffMIC:
    """A tiny model with its check fitted on 60 training images (2 views), thresholded on 30 more."""
    model = tiny_model(3, seed=1)
    train = build_cache(model, tinted_dataset(60, 0), views=2, seed=0)
    val = build_cache(model, tinted_dataset(30, 1), views=1)
    model.ood_check, model.config.ood_threshold = fit_distribution_check(model, train, val)
    return model


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("with-check")
    model.save_pretrained(folder, half=True)
    return folder


def scores(model: DiffMIC, images) -> np.ndarray:
    pipe = DiffMICPipeline(model)
    x, _ = pipe.preprocess(list(images))
    with torch.no_grad():
        return model.ood_scores(model.condition(x).features)


def test_ledoit_wolf_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 70)) @ rng.normal(size=(70, 70))  # more dimensions than rows
    x -= x.mean(0)
    cov, shrinkage = ledoit_wolf(x)
    expected, expected_shrinkage = sklearn.ledoit_wolf(x, assume_centered=True)
    assert shrinkage == pytest.approx(expected_shrinkage) and 0 < shrinkage < 1
    np.testing.assert_allclose(cov, expected, rtol=1e-10)
    assert np.linalg.eigvalsh(cov).min() > 0  # well conditioned although N < D


def test_gaussian_check_is_the_mahalanobis_distance_to_the_nearest_class_mean():
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 2
    features = rng.normal(size=(600, 3)) + np.array([[5.0, 0, 0]]) * labels[:, None]
    check = fit_check(features, labels)
    assert check.projection.shape == (3, 3) and check.class_means.shape == (2, 3)
    near = check.score(np.array([[0.0, 0, 0], [5.0, 0, 0]]))
    far = check.score(np.array([[2.5, 0, 0], [0, 8.0, 0], [-6.0, 0, 0]]))
    assert near.max() < 0.01 and far.min() > 1.5  # (distance / sd)^2 / 3: 2.08, 21.3, 12
    assert check.score(np.array([[0, 3.0, 0]]))[0] == pytest.approx(3.0, rel=0.1)
    pca = fit_check(features, labels, components=2)
    assert pca.projection.shape == (2, 3)


def test_threshold_accepts_the_stated_fraction():
    values = np.arange(1.0, 101.0)
    assert fit_threshold(values, 0.95) == 96.0  # the 96th of 100: a 101st image falls below with p = 96/101
    assert fit_threshold(values[:19], 0.95) == 19.0 and fit_threshold(values[:10], 0.95) == 10.0
    assert fit_threshold(values[::-1], 0.5) == 51.0


def test_scores_are_low_for_training_like_images_and_high_for_constant_and_noise_images(model):
    threshold = model.config.ood_threshold
    inside = scores(model, tinted_dataset(40, 7).images)  # new images from the training distribution
    outside = scores(model, foreign_images())
    assert np.mean(inside <= threshold) >= 0.8
    assert outside.min() > threshold and outside.min() > 4 * np.median(inside)


def test_check_distribution_agrees_with_a_full_run_and_the_dcg_runs_once(model):
    pipe = DiffMICPipeline(model)
    calls = []
    hook = model.dcg.cam_head.register_forward_hook(lambda *_: calls.append(1))
    try:
        image = foreign_images()[0]
        verdict = pipe.check_distribution(image)
        assert len(calls) == 1
        prepared = pipe.prepare(image)
        assert pipe.check_distribution(prepared) == verdict and len(calls) == 2  # no second pass
        out = pipe(prepared, FAST)
        assert len(calls) == 2
    finally:
        hook.remove()
    assert out.ood == verdict and out.to_json()["ood"] == verdict
    assert verdict["available"] and verdict["flagged"] and verdict["score"] > verdict["threshold"]
    inside = pipe.check_distribution(tinted_dataset(3, 9).images[0])
    assert inside["available"] and not inside["flagged"]


def test_round_trip_through_save_and_load(model, saved):
    names = {p.name for p in saved.iterdir()}
    assert names == {"config.json", "model.safetensors", "ood.safetensors", "README.md"}
    stored = load_file(saved / "ood.safetensors")
    assert all(t.dtype == torch.float32 for t in stored.values())  # statistics stay float32 with half weights
    config = json.loads((saved / "config.json").read_text())
    assert config["ood_threshold"] == model.config.ood_threshold and config["ood_acceptance"] == 0.95
    loaded = DiffMIC.from_pretrained(saved)
    assert loaded.config.ood_threshold == model.config.ood_threshold
    for name, tensor in model.ood_check.to_tensors().items():
        assert torch.equal(loaded.ood_check.to_tensors()[name], tensor)
    image = tinted_dataset(2, 5).images[0]
    a, b = DiffMICPipeline(model).check_distribution(image), DiffMICPipeline(loaded).check_distribution(image)
    assert a["threshold"] == b["threshold"] and a["score"] == pytest.approx(b["score"], rel=0.05)


def test_loads_from_the_hub_cache_offline(model, saved, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    repo = tmp_path / "hub" / "models--demo-org--diffmic-ood"
    snap = repo / "snapshots" / ("0123456789abcdef" * 3)[:40]
    shutil.copytree(saved, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snap.name)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = DiffMIC.from_pretrained("demo-org/diffmic-ood")
    assert loaded.config.ood_threshold == model.config.ood_threshold
    assert torch.equal(loaded.ood_check.projection, model.ood_check.projection)
    assert DiffMICPipeline(loaded).check_distribution(foreign_images()[1])["flagged"]


def test_a_model_saved_without_the_check_loads_and_says_it_is_unavailable(tmp_path):
    folder = tmp_path / "old"
    tiny_model(3).save_pretrained(folder)
    assert not (folder / "ood.safetensors").exists()
    config = json.loads((folder / "config.json").read_text())
    for key in ("ood_features", "ood_acceptance", "ood_threshold"):
        del config[key]  # a config.json written before the check existed
    (folder / "config.json").write_text(json.dumps(config))
    pipe = DiffMICPipeline.from_pretrained(folder)
    assert pipe.model.ood_check is None and pipe.config.ood_threshold is None
    assert pipe(random_image(), FAST).ood == NO_OOD_CHECK == pipe.check_distribution(random_image())


def test_saving_a_model_without_the_check_removes_a_stale_one(saved, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    tiny_model(3).save_pretrained(folder)
    assert not (folder / "ood.safetensors").exists()


def test_a_check_for_other_features_is_refused(saved, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    config = json.loads((folder / "config.json").read_text())
    config["ood_features"] = "both"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="ood.safetensors is for 256 features but the model gives 512"):
        DiffMIC.from_pretrained(folder)
    with pytest.raises(ModelLoadError, match="lacks the tensors class_means"):
        DistributionCheck.from_tensors({"center": torch.zeros(2), "projection": torch.eye(2)})


def test_warning_names_the_modality():
    assert warning(tiny_model(3, task="derm").config) == (
        "this image does not look like the dermoscopy images this model was trained on; "
        "the answer is unreliable"
    )
    assert "the colour fundus images this model" in warning(tiny_model(3, task="fundus").config)
    assert "like the images this model" in warning(tiny_model(3).config)


def test_cli_json_and_text_report_the_check(saved, tmp_path, capsys):
    path = tmp_path / "blank.png"
    Image.fromarray(foreign_images()[0]).save(path)
    argv = ["predict", str(path), "--model", str(saved), "--sampler", "ddim", "--steps", "3"]
    assert main([*argv, "--json"]) == 0
    ood = json.loads(capsys.readouterr().out)["ood"]
    assert set(ood) == {"available", "score", "threshold", "flagged"}
    assert ood["available"] is True and ood["flagged"] is True
    assert isinstance(ood["score"], float) and isinstance(ood["threshold"], float)
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("warning: this image does not look like the images this model was trained on")


@pytest.mark.slow
def test_fit_ood_command_writes_the_check_into_a_model_folder(tmp_path, capsys):
    folder = tmp_path / "model"
    classes = ["Grade 0", "Grade I", "Grade II", "Grade III"]
    tiny_model(4, class_names=classes, task="placenta", ordinal=True).save_pretrained(folder)
    data = write_image_folder_fixture(tmp_path / "pmg", "placenta", n_per_class=6, size=64, seed=0)
    assert main(["fit-ood", str(folder), "--data", str(data), "--views", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (folder / "ood.safetensors").is_file()
    model = DiffMIC.from_pretrained(folder)
    assert model.ood_check is not None and model.config.ood_threshold > 0
    image = next(data.rglob("*.png"))
    argv = ["predict", str(image), "--model", str(folder), "--steps", "3", "--sampler", "ddim", "--json"]
    assert main(argv) == 0
    ood = json.loads(capsys.readouterr().out)["ood"]
    assert ood["available"] is True and ood["threshold"] == model.config.ood_threshold

    # the same views from a training run's conditioning cache give the same check
    train = folder_splits(data, model.config.input_size, seed=0).train
    build_cache(model, train, views=2, seed=0).save(tmp_path / "conditioning.npz")
    threshold = model.config.ood_threshold
    argv = ["fit-ood", str(folder), "--data", str(data), "--cache"]
    assert main([*argv, str(tmp_path / "conditioning.npz")]) == 0
    assert DiffMIC.from_pretrained(folder).config.ood_threshold == pytest.approx(threshold, rel=1e-5)
    capsys.readouterr()
    build_cache(model, tinted_dataset(len(train), 0), views=1).save(tmp_path / "other.npz")  # other images
    assert main([*argv, str(tmp_path / "other.npz")]) == 2
    assert "is not the conditioning of this model's training images" in capsys.readouterr().err

    assert main(["fit-ood", str(folder), "--task", "fundus"]) == 2
    assert "differ from the model's" in capsys.readouterr().err


def test_benchmark_finds_real_images_and_scores_a_model(model):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "ood.py"
    spec = importlib.util.spec_from_file_location("benchmark_ood", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    foreign = bench.foreign_images()
    assert {"pydicom:CT_small.dcm", "pydicom:MR_small.dcm", "matplotlib:grace_hopper.jpg"} <= set(foreign)
    result = bench.evaluate_task("derm", model, 4, {k: foreign[k] for k in list(foreign)[:3]})
    assert 0 <= result["auroc"] <= 1 and 0 <= result["accept_rate"] <= 1
    assert result["_detail"]["n_other_tasks"] == 8 and result["_detail"]["n_real"] == 3
