"""The Evaluate tab's handlers with a tiny model: Diagnose's estimator by default, the Bayes ceiling beside
each row on generated images, the confusion matrix (colour bar, counts, darker = more), a progress bar that
counts images, the class matching it shares with ``python -m diffmic evaluate``, and the task's
preprocessing applied to uploaded images as the pipeline applies it."""

from __future__ import annotations

import csv
import json
import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from app.confusion_figure import luminance
from app.controls import sampling_options
from app.eval_metrics import SAMPLE_CONSEQUENCE
from app.evaluation import EVAL_OUTPUTS, EvalOutputs, Evaluation, dataset_root
from app.models import ModelRegistry
from app.settings import DEFAULT_OPTIONS
from app.ui import build_demo
from diffmic.class_match import ClassMismatch, match_dataset
from diffmic.cli import main
from diffmic.data.datasets import SYNTHETIC_TEST_START
from diffmic.data.readers import read_dataset
from diffmic.data.synthetic.ceiling import ceiling
from diffmic.imageio import load_image
from diffmic.tasks import TASKS, Preprocessing
from diffmic.transforms import normalise, resize_square
from tests.test_app_support import FUNDUS, make_app_dirs, make_dataset_zip, random_png

N_GENERATED = 6


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_app_dirs(tmp_path_factory.mktemp("app"), n_examples=1)


@pytest.fixture(scope="module")
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings)


@pytest.fixture
def few_generated(monkeypatch):
    monkeypatch.setattr("app.evaluation.GENERATED_TEST_IMAGES", N_GENERATED)


def as_read(metrics: str) -> str:
    """The Markdown as a reader sees it: the glossary's (i) (an HTML tooltip) left out."""
    return re.sub(r"<abbr [^>]*>i</abbr>", "", metrics)


def table_rows(metrics: str) -> dict[str, list[str]]:
    """The per-method rows of the metrics Markdown table: method → its cells."""
    rows = {}
    for line in as_read(metrics).splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("method",) and not cells[0].startswith("---"):
            rows[cells[0]] = cells[1:]
    return rows


def header(metrics: str) -> list[str]:
    line = next(x for x in as_read(metrics).splitlines() if x.startswith("| method"))
    return [c.strip() for c in line.strip("|").split("|")]


# ---------------------------------------------------------------- the estimator
def test_evaluate_defaults_are_diagnoses_estimator(settings, registry):
    """The controls Evaluate starts with make the same SamplingOptions as Diagnose's (seed included)."""
    demo = build_demo(settings, registry)
    fns = {getattr(b.fn, "__qualname__", ""): b for b in demo.fns.values()}
    diagnose, evaluate = fns["Diagnosis.run"], fns["Evaluation.run_generated"]
    _, model, sampler, steps, samples, seed = (c.value for c in diagnose.inputs[:6])
    selection = registry.get(model)
    T = selection.pipe.config.timesteps
    diagnose_options = sampling_options(sampler, steps, samples, seed, T)
    eval_values = [c.value for c in evaluate.inputs]
    assert [c.elem_id for c in evaluate.inputs[1:]] == ["eval-sampler", "eval-steps", "eval-samples"]
    assert eval_values[0] == model
    assert Evaluation(registry)._options(selection, *eval_values[1:]) == diagnose_options
    # and both are the package's defaults (all T steps however spelled)
    assert diagnose_options.with_(steps=None) == DEFAULT_OPTIONS.with_(steps=None)
    # the handlers' named outputs are wired in their order
    shown = dict(metrics="eval-metrics", confusion="confusion", table="eval-table", table_csv="eval-csv")
    assert [c.elem_id for c in evaluate.outputs] == [shown.get(n, "eval-error") for n in EVAL_OUTPUTS]
    assert EVAL_OUTPUTS[-1] == "error"


def test_evaluate_says_which_estimator_scored_diffmic(registry, few_generated):
    evaluation = Evaluation(registry)
    default = evaluation.run_generated("fundus", "DDPM", 100, DEFAULT_OPTIONS.samples)
    assert isinstance(default, EvalOutputs) and default.error["visible"] is False
    assert "scored with Diagnose's estimator" in default.metrics
    assert f"the mean of {DEFAULT_OPTIONS.samples} runs" in default.metrics
    assert SAMPLE_CONSEQUENCE not in default.metrics.split("| method")[0]  # no warning about the default
    # the one-run row: the first run of each image alone, from the same chains
    rows = table_rows(default.metrics)
    assert "DiffMIC, 1 run (a sample)" in rows and SAMPLE_CONSEQUENCE in default.metrics
    one = evaluation.run_generated("fundus", "DDPM", 100, 1)
    assert f"**1 run per image**: faster, but {SAMPLE_CONSEQUENCE}" in one.metrics
    assert "DiffMIC, 1 run (a sample)" not in table_rows(one.metrics)  # it is the DiffMIC row itself
    fewer = evaluation.run_generated("fundus", "DDIM", 10, 4).metrics
    assert "Diagnose's estimator" not in fewer and "mean of 4 runs per image" in fewer


# ---------------------------------------------------------------- the Bayes ceiling
def test_evaluate_shows_the_ceiling_beside_every_row_on_generated_images(registry, few_generated, tmp_path):
    out = Evaluation(registry).run_generated("fundus", "DDIM", 5, 2)
    assert out.error["visible"] is False
    images = range(SYNTHETIC_TEST_START, SYNTHETIC_TEST_START + N_GENERATED)
    best = f"{ceiling('fundus', images, 0):.3f}"  # the package's ceiling of exactly these images
    columns = header(out.metrics)
    assert columns[1:3] == ["accuracy", "best possible"]
    rows = table_rows(out.metrics)
    assert set(rows) == {
        "**DiffMIC**",
        "DiffMIC, 1 run (a sample)",
        "fused prior",
        "global prior",
        "local prior",
    }
    for method, cells in rows.items():
        assert cells[1] == best, method
        assert 0 <= float(cells[0]) <= 1
    assert "irreducible" in out.metrics
    uploaded = Evaluation(registry).run(str(make_dataset_zip(tmp_path, 1)), "fundus", "DDIM", 5, 1)
    assert "best possible" not in header(uploaded.metrics) and "irreducible" not in uploaded.metrics


# ---------------------------------------------------------------- the confusion matrix
def test_evaluate_confusion_matrix_has_a_colour_bar_counts_and_darker_is_more(registry, tmp_path):
    out = Evaluation(registry).run(str(make_dataset_zip(tmp_path, 2)), "fundus", "DDIM", 5, 1)
    figure = out.confusion
    go.Figure(figure.to_dict())  # valid for plotly (the figure is built without validation)
    (heat,) = figure.data
    z = np.asarray(heat.z)
    assert z.sum() == 10 and heat.showscale is True and heat.colorbar.title.text == "images"
    assert heat.zmin == 0 and heat.zmax == max(z.max(), 1)
    # a count in every cell, where the cell is
    written = {(a.y, a.x): int(a.text) for a in figure.layout.annotations}
    assert written == {(FUNDUS[i], FUNDUS[j]): int(z[i, j]) for i in range(5) for j in range(5)}
    # the colour scale runs from light (0) to dark (the most): darker is more, all along
    shades = [luminance(colour) for _, colour in heat.colorscale]
    assert all(a > b for a, b in zip(shades, shades[1:], strict=False)) and shades[0] > 0.9
    # the count stays readable: white on the darkest cell, dark on an empty one
    colour = {(a.y, a.x): a.font.color for a in figure.layout.annotations}
    i, j = np.unravel_index(z.argmax(), z.shape)
    assert colour[FUNDUS[i], FUNDUS[j]] == "#ffffff"
    empty = np.argwhere(z == 0)
    if len(empty):
        assert colour[FUNDUS[empty[0][0]], FUNDUS[empty[0][1]]] != "#ffffff"


# ---------------------------------------------------------------- progress
def test_evaluate_progress_counts_images(registry, few_generated, monkeypatch):
    bars = []

    class Recorder:
        def __init__(self, *args, total=None, unit="it", disable=False, **kwargs):
            self.total, self.unit, self.updates = total, unit, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr("diffmic.evaluate.tqdm", Recorder)
    monkeypatch.setattr("app.evaluation.BATCH_SIZE", 4)  # several batches: the bar must still count images
    out = Evaluation(registry).run_generated("fundus", "DDIM", 5, 1)
    assert out.error["visible"] is False
    (bar,) = bars
    assert bar.total == N_GENERATED and bar.unit == "images"
    assert bar.updates == [4, 2] and sum(bar.updates) == N_GENERATED


# ---------------------------------------------------------------- class matching, shared with the CLI
def unzip(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)
    return dataset_root(into)


def test_evaluate_and_the_cli_refuse_a_dataset_of_other_classes_alike(settings, registry, tmp_path, capsys):
    archive = make_dataset_zip(tmp_path / "derm", n_per_class=1, task="derm")
    folder = unzip(archive, tmp_path / "derm-unzipped")
    with pytest.raises(ClassMismatch) as refusal:
        match_dataset(read_dataset(folder), FUNDUS)
    message = str(refusal.value)
    assert "none of the dataset's classes (0_NV, 1_MEL, 2_BCC, 3_BKL)" in message and "No DR" in message
    shown = Evaluation(registry).run(str(archive), "fundus", "DDIM", 5, 1)
    assert shown.error["visible"] is True and message in shown.error["value"] and shown.metrics == ""
    model = str(settings.weights_dir / "fundus")
    assert main(["evaluate", "--model", model, "--data", str(folder), "--steps", "5"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_evaluate_and_the_cli_match_classes_by_name_and_skip_the_same_images(
    settings, registry, tmp_path, capsys
):
    """Folders named loosely (``0_No DR``, lower case) and in another order than the model's classes, plus a
    folder of a class the model lacks: both score the same images with the same labels, both say so."""
    archive = make_dataset_zip(tmp_path / "fundus", n_per_class=1, task="fundus")
    folder = unzip(archive, tmp_path / "unzipped")
    (folder / "0_No DR").rename(folder / "no dr")  # sorts after "1_Mild" …: position would mislabel it
    extra = folder / "Unknown lesion"
    extra.mkdir()
    random_png(extra / "a.png")
    random_png(extra / "b.png")
    rezipped = shutil.make_archive(str(tmp_path / "renamed"), "zip", folder.parent)
    shown = Evaluation(registry).run(rezipped, "fundus", "DDIM", 5, 1)
    assert shown.error["visible"] is False
    assert "**Skipped:** 2 image(s) of classes this model does not have (Unknown lesion)" in shown.metrics
    model = str(settings.weights_dir / "fundus")
    argv = ["evaluate", "--model", model, "--data", str(folder), "--sampler", "ddim", "--steps", "5"]
    assert main([*argv, "--samples", "1", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "warning: skipped 2 image(s) of classes this model does not have (Unknown lesion)" in captured.err
    assert report["n"] == 5 and report["skipped"] == {"Unknown lesion": 2}
    table = list(csv.reader(open(shown.table_csv)))[1:]
    truth = {row[0].split("/")[0]: row[1] for row in table}
    assert truth["no dr"] == "No DR" and truth["4_Proliferative DR"] == "Proliferative DR"
    # the same images, labels and answers (same options, same seed) in the app and the CLI
    assert [FUNDUS.index(row[1]) for row in table] == report["labels"]
    assert [FUNDUS.index(row[2]) for row in table] == report["predictions"]
    assert sorted(report["labels"]) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- preprocessing
def test_evaluate_keeps_the_aspect_for_a_task_that_asks_for_it(registry, tmp_path, monkeypatch):
    folder = tmp_path / "wide"
    for name in FUNDUS[:2]:
        (folder / name).mkdir(parents=True)
        pixels = np.random.default_rng(len(name)).integers(0, 255, (40, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name / "wide.png")  # 3:1, so crop and pad differ
    selection = registry.get("fundus")
    pipe = selection.pipe
    paths = [folder / name / "wide.png" for name in FUNDUS[:2]]
    cropped, _, _ = Evaluation._dataset(folder, selection)
    monkeypatch.setitem(TASKS, "fundus", replace(TASKS["fundus"], preprocessing=Preprocessing(square="pad")))
    padded, names, skipped = Evaluation._dataset(folder, selection)
    assert names == ["Mild/wide.png", "No DR/wide.png"] and skipped == ""
    x, _ = pipe.preprocess([load_image(p) for p in sorted(paths)])  # what the pipeline makes of them
    for i, path in enumerate(sorted(paths)):
        pixels, label = padded[i]
        assert label == FUNDUS.index(path.parent.name)
        expected = resize_square(load_image(path), pipe.config.input_size, "pad")
        assert np.array_equal(pixels.numpy(), expected)
        assert np.allclose(normalise(pixels.numpy()[None], pipe.config).numpy(), x[i : i + 1].numpy())
        assert not np.array_equal(cropped[i][0].numpy(), expected)  # the default crop differs
        assert pixels.numpy()[0].max() == 0  # the letterbox: the top row is black


def test_class_matching_rules():
    from diffmic.class_match import class_index, normalise_name, require_same_classes

    assert normalise_name("02_Moderate") == normalise_name("moderate") == "moderate"
    assert class_index("grade ii", ["Grade I", "Grade II"]) == 1 and class_index("II", ["Grade II"]) is None
    require_same_classes(
        ["no dr", "Mild", "Moderate", "Severe", "Proliferative DR"], FUNDUS, "the fundus task"
    )
    with pytest.raises(ClassMismatch, match="are not the fundus task's"):
        require_same_classes(list(reversed(FUNDUS)), FUNDUS, "the fundus task")
    with pytest.raises(ClassMismatch):
        require_same_classes(FUNDUS[:4], FUNDUS, "the fundus task")


def test_per_image_csv_matches_the_table(registry, tmp_path):
    out = Evaluation(registry).run(str(make_dataset_zip(tmp_path, 2)), "fundus", "DDIM", 10, 1)
    assert "10 images" in out.metrics and "DDIM, 10 steps, 1 run(s) per image" in out.metrics
    rows = list(csv.reader(open(out.table_csv)))
    assert rows[0] == out.table["headers"] and len(rows) == 11
    assert [r[:3] for r in rows[1:]] == [r[:3] for r in out.table["value"]]
    assert all(re.fullmatch(r"\d_[^/]+/fundus_\d{5}\.png", r[0]) for r in rows[1:])
