"""The answer users see is the documented estimator — the mean over the chains of softmax(y_0 / T), T the
fitted temperature — everywhere it is shown: the pipeline, ``evaluate``, the CLI's JSON, the ``/predict``
API and the app's answer card. The answer is computed here from the chains' final states
(``tests.estimator_reference``) with a temperature of 0.3, so a first-chain answer or an ignored
temperature cannot pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from app import report
from app.diagnose import Diagnosis
from app.diagnose_frames import OUTPUTS
from app.models import ModelRegistry
from diffmic.cli import main
from diffmic.data.datasets import ArrayDataset
from diffmic.evaluate import evaluate
from diffmic.model import DiffMIC
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import TASKS
from diffmic.transforms import normalise
from diffmic.uncertainty import answer_from_labels, answer_probabilities
from tests.estimator_reference import chain_probabilities, expected_answer
from tests.helpers import random_image, tiny_model
from tests.test_app_support import make_app_dirs

TEMPERATURE = 0.3
ATOL = 1e-4  # the folded chain against the plain loop (y_0 within 1e-4), through a sharp softmax


def calibrated_model(num_classes: int = 3, **overrides) -> DiffMIC:
    """A tiny random model whose fitted temperature is not 1."""
    return tiny_model(num_classes, seed=1, temperature=TEMPERATURE, **overrides)


def assert_breaks_would_show(answer: np.ndarray, y0: np.ndarray) -> None:
    """The case tells the estimator from its likely mistakes: the first chain alone, temperature 1."""
    first = chain_probabilities(y0[..., 0, :], TEMPERATURE)
    untempered = chain_probabilities(y0, 1.0).mean(-2)
    assert np.abs(answer - first).max() > 0.02 and np.abs(answer - untempered).max() > 0.02


def probabilities(mapping: dict[str, float]) -> np.ndarray:
    return np.array(list(mapping.values()))


@pytest.mark.parametrize(
    "options",
    [
        SamplingOptions(sampler="ddpm", samples=6, seed=3),
        SamplingOptions(sampler="ddim", steps=10, samples=5, seed=4),
    ],
    ids=["ddpm", "ddim"],
)
def test_the_pipeline_answers_the_mean_over_chains_of_the_tempered_softmax(options):
    pipe = DiffMICPipeline(calibrated_model())
    image = random_image(seed=5)
    out = pipe(image, options)
    expected, y0 = expected_answer(pipe.model, pipe.preprocess(image)[0], options)
    assert_breaks_would_show(expected[0], y0[0])
    names = pipe.config.class_names
    assert list(out.probabilities) == names
    np.testing.assert_allclose(probabilities(out.probabilities), expected[0], atol=ATOL)
    assert out.label == names[int(expected[0].argmax())] and out.label_index == int(expected[0].argmax())
    np.testing.assert_allclose(out.sample_probs, chain_probabilities(y0[0], TEMPERATURE), atol=ATOL)
    np.testing.assert_allclose(probabilities(out.uncertainty["mean"]), expected[0], atol=ATOL)
    assert out.to_json()["probabilities"] == out.probabilities


def test_the_shared_estimator_is_the_documented_one():
    y0 = np.random.default_rng(0).normal(0, 2, (4, 7, 3))
    expected = chain_probabilities(y0, TEMPERATURE).mean(1)
    np.testing.assert_allclose(answer_from_labels(y0, TEMPERATURE).numpy(), expected, atol=1e-12)
    probs = chain_probabilities(y0, TEMPERATURE)
    np.testing.assert_allclose(answer_probabilities(probs), expected, atol=1e-12)
    np.testing.assert_allclose(answer_probabilities(torch.from_numpy(probs)).numpy(), expected, atol=1e-12)


def test_evaluate_scores_the_same_answer_the_pipeline_gives():
    model = calibrated_model()
    size = model.config.input_size
    images = np.stack(
        [np.asarray(Image.fromarray(random_image(seed=s)).resize((size, size))) for s in range(6)]
    )
    labels = np.arange(6) % 3
    options = SamplingOptions(sampler="ddim", steps=8, samples=4, seed=2)
    report = evaluate(DiffMICPipeline(model), ArrayDataset(images, labels), options)
    expected, y0 = expected_answer(model, normalise(images, model.config), options)  # one batch: seed 2
    assert_breaks_would_show(expected, y0)
    np.testing.assert_allclose(report["probabilities"], expected, atol=ATOL)
    assert report["predictions"] == expected.argmax(-1).tolist()
    assert report["diffmic"]["accuracy"] == pytest.approx(float((expected.argmax(-1) == labels).mean()))


def test_the_cli_json_is_the_estimator(tmp_path, capsys):
    calibrated_model(4).save_pretrained(tmp_path / "model")
    Image.fromarray(random_image(seed=7)).save(tmp_path / "scan.png")
    argv = ["predict", str(tmp_path / "scan.png"), "--model", str(tmp_path / "model"), "--json"]
    assert main([*argv, "--sampler", "ddim", "--steps", "10", "--samples", "6", "--seed", "9"]) == 0
    out = json.loads(capsys.readouterr().out)
    model = DiffMIC.from_pretrained(tmp_path / "model")
    assert model.config.temperature == TEMPERATURE  # saved and loaded with the model
    x = DiffMICPipeline(model).preprocess(tmp_path / "scan.png")[0]
    expected, y0 = expected_answer(model, x, SamplingOptions(sampler="ddim", steps=10, samples=6, seed=9))
    assert_breaks_would_show(expected[0], y0[0])
    np.testing.assert_allclose(probabilities(out["probabilities"]), expected[0], atol=ATOL)
    assert out["label"] == model.config.class_names[int(expected[0].argmax())]


def test_the_predict_api_and_the_answer_card_show_the_estimator(tmp_path):
    settings = make_app_dirs(tmp_path, n_examples=1, tasks=())
    names = list(TASKS["fundus"].class_names)
    model = calibrated_model(len(names), class_names=names, task="fundus", ordinal=TASKS["fundus"].ordinal)
    model.save_pretrained(settings.weights_dir / "fundus")
    image = str(next((settings.assets_dir / "fundus").glob("*.png")))
    model = DiffMIC.from_pretrained(settings.weights_dir / "fundus")
    x = DiffMICPipeline(model).preprocess(image)[0]
    expected, y0 = expected_answer(model, x, SamplingOptions(sampler="ddim", steps=10, samples=4, seed=7))
    expected = expected[0]
    assert_breaks_would_show(expected, y0[0])
    top = int(expected.argmax())

    diagnosis = Diagnosis(ModelRegistry(settings), interval_s=60.0)
    api = diagnosis.predict(image, "fundus", "DDIM", 10, 4, 7)
    np.testing.assert_allclose(probabilities(api["probabilities"]), expected, atol=ATOL)
    assert api["label"] == names[top]

    final = dict(zip(OUTPUTS, list(diagnosis.run(image, "fundus", "DDIM", 10, 4, 7))[-1], strict=True))
    np.testing.assert_allclose(probabilities(final["json"]["probabilities"]), expected, atol=ATOL)
    second = float(np.sort(expected)[-2])
    assert expected[top] - second > 0.02  # not a tie: the card names one class
    card = final["answer"]
    head = card.split("\n")[0]  # "### <class> — probability p", or a close call naming <class> first
    name = report.full_name("fundus", names[top])
    assert head.startswith((f"### {name} — ", f"### Close call between {name} and "))
    assert f"probability {report.percent(expected[top])}" in head
