"""The task registry is the one place a task is defined: a fourth task added there (and nowhere else) is
generated, offered by the CLI and the app, trained and predicted, with its own preprocessing (its images
padded to a square, not cropped; nothing dark counted as background for its ROIs).

This module is also the tiny task's generator (``generator="tests.test_tasks"``): the class is the colour
channel of a bright square on a dark background.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.evaluation import generated_note
from diffmic import rois
from diffmic.cli import build_parser
from diffmic.data.datasets import synthetic_splits
from diffmic.data.synthetic import GENERATORS, Sample, generate_dataset, get_task
from diffmic.model import DiffMIC
from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import (
    DEFAULT_PREPROCESSING,
    TASKS,
    Preprocessing,
    TaskInfo,
    generated_tasks,
    preprocessing,
)
from diffmic.train import Trainer
from tests.helpers import tiny_config
from tests.test_train import config

DESCRIPTION = "a bright square whose colour channel is the class"
NAMES = ("Red", "Green", "Blue")


def draw_plan(rng: np.random.Generator, label: int) -> dict:
    """Where the square goes (in normalised coordinates) and its side."""
    return {"corner": tuple(float(v) for v in rng.uniform(0.05, 0.55, 2)), "side": 0.4}


def generate(rng: np.random.Generator, label: int, size: int) -> Sample:
    """The tiny task's image of class ``label``."""
    plan = draw_plan(rng, label)
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), bool)
    r, c = (int(v * size) for v in plan["corner"])
    side = int(plan["side"] * size)
    mask[r : r + side, c : c + side] = True
    image[mask, label] = 255
    return Sample(image, label, mask)


KEEP_ASPECT = Preprocessing(square="pad", background_level=None)  # as a chest X-ray task would declare
TINY_TASK = TaskInfo(
    "tiny",
    "Tiny squares (3 colours)",
    "tiny square",
    NAMES,
    NAMES,
    False,
    generator="tests.test_tasks",
    preprocessing=KEEP_ASPECT,
)


@pytest.fixture
def tiny_task(monkeypatch):
    """The fourth task, registered in the one table only."""
    monkeypatch.setitem(TASKS, "tiny", TINY_TASK)
    return "tiny"


def test_the_builtin_tasks_each_have_a_generator_under_their_registry_name():
    assert list(GENERATORS) == generated_tasks() == list(TASKS)
    for name, info in TASKS.items():
        spec = GENERATORS[name]
        assert (spec.name, spec.class_names, spec.ordinal) == (name, info.class_names, info.ordinal)
    assert "tiny" not in GENERATORS
    with pytest.raises(ValueError, match="unknown synthetic task 'tiny'"):
        get_task("tiny")


def test_a_task_without_a_generator_is_registered_but_not_generated(monkeypatch):
    info = TaskInfo("custom", "A task", "custom", ("a", "b"), ("a", "b"), False)
    monkeypatch.setitem(TASKS, "custom", info)
    assert "custom" not in GENERATORS and "custom" not in generated_tasks()
    assert not generated_note("custom")[1]


def test_a_task_added_to_the_registry_is_generated_and_offered_everywhere(tiny_task):
    assert tiny_task in GENERATORS and tiny_task in generated_tasks()
    images, labels, masks = generate_dataset(tiny_task, 6, seed=0, size=32)
    assert images.shape == (6, 32, 32, 3) and sorted(labels) == [0, 0, 1, 1, 2, 2]
    for image, label, mask in zip(images, labels, masks, strict=True):  # the square, in the class's channel
        assert (image[mask][:, label] == 255).all() and mask.any()
    args = build_parser().parse_args(["generate", "--task", tiny_task, "--n", "10"])
    assert args.task == tiny_task
    note, available = generated_note(tiny_task)
    assert available and tiny_task in note
    assert tiny_task in generated_note("custom")[0]  # the list of tasks with generated images names it


def test_a_task_added_to_the_registry_trains_and_predicts(tiny_task, tmp_path):
    model_config = tiny_config(3, class_names=list(NAMES), task=tiny_task)
    splits = synthetic_splits(tiny_task, 36, 3, model_config.input_size, seed=0, workers=1)
    assert splits.class_names == list(NAMES) and not splits.ordinal
    assert len(splits.train) + len(splits.val) == 36 and len(splits.test) == 3
    out = tmp_path / "tiny"
    tc = config(out_dir=str(out), global_epochs=1, local_epochs=1, diffusion_epochs=2, val_every=2)
    assert Trainer(model_config, tc, splits).run()
    model = DiffMIC.from_pretrained(out)
    assert model.config.task == tiny_task and model.config.class_names == list(NAMES)
    image = splits.test.images[0]
    result = DiffMICPipeline(model)(image)
    assert result.label in NAMES and set(result.probabilities) == set(NAMES)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def wide_image() -> np.ndarray:
    """A 2:1 image, dark grey, with a white stripe along its left edge (a centre crop cuts it off)."""
    image = np.full((40, 80, 3), 50, np.uint8)
    image[:, :6] = 255
    return image


def test_the_registry_declares_each_tasks_preprocessing(tiny_task):
    assert preprocessing(tiny_task) == KEEP_ASPECT
    assert preprocessing("fundus") == preprocessing("no-such-task") == DEFAULT_PREPROCESSING
    assert (
        DEFAULT_PREPROCESSING.square == "crop" and rois.DARK_LEVEL == DEFAULT_PREPROCESSING.background_level
    )
    with pytest.raises(ValueError, match="square"):
        Preprocessing(square="stretch")


@pytest.mark.parametrize(("task", "kept"), [("tiny", True), ("custom", False)])
def test_the_pipeline_makes_images_square_the_tasks_way(tiny_task, task, kept):
    """Padded (the tiny task): the whole image, black above and below; centre-cropped (a custom task):
    the left edge is cut off, nothing is black."""
    config = tiny_config(3, class_names=list(NAMES), task=task)
    pixels = DiffMICPipeline(DiffMIC(config).eval()).preprocess(wide_image())[1][0]
    size = config.input_size
    assert pixels.shape == (size, size, 3)
    assert (pixels[: size // 8].max() == 0) == kept  # the letterbox
    assert (pixels[size // 2, : size // 20].min() > 200) == kept  # the white stripe on the left


@pytest.mark.parametrize(("task", "level"), [("tiny", None), ("custom", rois.DARK_LEVEL)])
def test_the_rois_background_is_the_tasks(tiny_task, task, level, monkeypatch):
    """The DCG asks for the task's background level; with none, a black picture is all field."""
    model = DiffMIC(tiny_config(3, class_names=list(NAMES), task=task)).eval()
    asked, field_mask = [], rois.field_mask
    monkeypatch.setattr(
        rois,
        "field_mask",
        lambda pixels, dark_level: asked.append(dark_level) or field_mask(pixels, dark_level),
    )
    x = DiffMICPipeline(model).preprocess(np.zeros((64, 64, 3), np.uint8))[0]
    with torch.no_grad():
        model.dcg(x)
    assert asked == [level]
    assert field_mask(torch.zeros(1, 3, 8, 8), level).all() == (level is None)
