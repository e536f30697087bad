"""Choices made on validation images only: the ROI map and the Grad-CAM variant."""

import numpy as np
import pytest
import torch

from diffmic.data.datasets import ArrayDataset, Splits
from diffmic.selection import (
    box_hits,
    choose_explanation,
    choose_explanations,
    choose_roi_map,
    choose_saliency_contrast,
    points_at_lesion,
)
from diffmic.train import TrainConfig, Trainer
from tests.helpers import tiny_config


class Untouchable(ArrayDataset):
    """A dataset that fails the test if anything reads its images, labels or masks."""

    def __getattribute__(self, name):
        if name in ("images", "labels", "masks", "__getitem__"):
            raise AssertionError(f"a choice read {name} of a split other than validation")
        return super().__getattribute__(name)

    def __len__(self):
        return 8


def lesion_dataset(n: int, seed: int) -> ArrayDataset:
    """Dark images with one bright lesion each, and its mask."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 128, 128, 3), 40, np.uint8)
    masks = np.zeros((n, 128, 128), bool)
    for i in range(n):
        r, c = rng.integers(10, 110, 2)
        images[i, r : r + 8, c : c + 8] = 250
        masks[i, r : r + 8, c : c + 8] = True
    return ArrayDataset(images, np.arange(n) % 3, masks)


def test_pointing_and_box_hits():
    mask = np.zeros((64, 64), bool)
    mask[40:44, 10:14] = True
    heat = np.zeros((8, 8))
    heat[5, 1] = 1.0  # cell centre (44, 12) in pixels: next to the lesion
    assert points_at_lesion(heat, mask, tolerance=4)
    heat = np.zeros((8, 8))
    heat[0, 7] = 1.0
    assert not points_at_lesion(heat, mask, tolerance=4)
    assert box_hits(np.array([[8, 38, 16, 46], [40, 0, 48, 8]]), mask).tolist() == [True, False]


def test_choices_read_only_the_validation_split(tmp_path):
    torch.manual_seed(0)
    val = lesion_dataset(12, 1)
    splits = Splits(
        Untouchable(val.images, val.labels, val.masks),
        val,
        Untouchable(val.images, val.labels),
        ["a", "b", "c"],
        False,
    )
    trainer = Trainer(tiny_config(3), TrainConfig(out_dir=str(tmp_path)), splits)
    trainer._finish_stage("global")  # the ROI map is chosen here, before the local branch trains
    mode, scores = choose_roi_map(trainer.model, val)
    assert trainer.state.fitted["roi_map"] == mode and scores[mode] == max(scores.values())
    assert trainer.cfg.roi_map == mode and trainer.state.stage == "local"
    choice, cam_scores = choose_explanation(trainer.model, val, limit=4)
    assert len(cam_scores) == 6 and f"{choice[0]}:{choice[1]}" == max(cam_scores, key=cam_scores.get)
    contrast, contrast_scores = choose_saliency_contrast(trainer.model, val)
    assert set(contrast_scores) == {"classes", "first-class"}
    assert contrast_scores[contrast] == max(contrast_scores.values())
    values, scores = choose_explanations(trainer.model, val)  # what training fits at its end
    assert values["saliency_contrast"] == contrast and set(scores) == {"saliency contrast", "grad-cam"}
    assert (values["cam_method"], values["cam_stage"]) == choose_explanation(trainer.model, val)[0]


def test_no_masks_no_choice():
    data = ArrayDataset(np.zeros((4, 128, 128, 3), np.uint8), np.arange(4) % 3)
    from tests.helpers import tiny_model

    assert choose_roi_map(tiny_model(3), data) == (None, {})
    assert choose_explanation(tiny_model(3), data) == (None, {})
    assert choose_saliency_contrast(tiny_model(3), data) == (None, {})
    assert choose_explanations(tiny_model(3), data) == ({}, {})


@pytest.mark.parametrize("mode", ["predicted", "prior-weighted", "all-classes"])
def test_every_roi_map_keeps_the_crops_on_the_field(mode):
    from tests.helpers import tiny_model

    model = tiny_model(3, roi_map=mode)
    x = torch.full((2, 3, 128, 128), -2.0)  # normalised black
    x[:, :, 32:96, 32:96] = 0.5  # the field: a bright square in the middle
    with torch.no_grad():
        g = model.dcg(x)
    for boxes in g.boxes.tolist():
        for x0, y0, x1, y1 in boxes:  # global-view px (64 wide); the field is 16..48
            inside = max(0, min(x1, 48) - max(x0, 16)) * max(0, min(y1, 48) - max(y0, 16))
            assert inside >= 0.5 * (x1 - x0) * (y1 - y0)


def test_choose_explanations_command_rewrites_only_the_explanation_settings(tmp_path, capsys):
    from diffmic.cli import main
    from diffmic.config import DiffMICConfig
    from diffmic.data.datasets import synthetic_splits
    from diffmic.data.synthetic import GENERATORS
    from diffmic.model import DiffMIC
    from tests.helpers import tiny_model

    folder = tmp_path / "model"
    classes = list(GENERATORS["placenta"].class_names)
    tiny_model(4, class_names=classes, task="placenta", ordinal=True).save_pretrained(folder)
    before = DiffMICConfig.load(folder / "config.json").to_dict()
    # what the command must choose: the choices made here on the validation split it was told of
    model = DiffMIC.from_pretrained(folder)
    val = synthetic_splits("placenta", 40, 0, model.config.input_size, seed=0).val
    _, scores = choose_explanations(model, val)
    # the rule: the best score, ties to the first listed ("classes"; Grad-CAM before ++, stage -1 first)
    contrast = max(scores["saliency contrast"], key=scores["saliency contrast"].get)
    method, stage = max(scores["grad-cam"], key=scores["grad-cam"].get).split(":")
    values = {"saliency_contrast": contrast, "cam_method": method, "cam_stage": int(stage)}
    assert main(["choose-explanations", str(folder), "--task", "placenta", "--train-size", "40"]) == 0
    printed = capsys.readouterr().out
    for name, table in scores.items():  # the scores it chose by, as computed here
        assert f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in table.items()) in printed
    assert "chose " + ", ".join(f"{k} = {v}" for k, v in values.items()) in printed and "wrote" in printed
    after = DiffMICConfig.load(folder / "config.json").to_dict()
    assert {k: after[k] for k in values} == values
    changed = {k for k in after if after[k] != before[k]}
    assert changed <= {"saliency_contrast", "cam_method", "cam_stage"}
    assert main(["choose-explanations", str(folder), "--task", "fundus"]) == 2  # another task's classes
    assert "differ from the model's" in capsys.readouterr().err
