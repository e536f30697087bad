"""Training: both stages lower their loss, the best model is saved, and a stopped run resumes."""

import json

import numpy as np
import pytest
import torch

from diffmic.data.datasets import ArrayDataset, Splits
from diffmic.hub import load_pretrained
from diffmic.losses import dcg_loss, diffusion_loss
from diffmic.train import TrainConfig, Trainer, epoch_batches, fit_temperature
from diffmic.transforms import normalise
from tests.helpers import tiny_config


def colour_dataset(n: int, seed: int) -> ArrayDataset:
    """Images whose class is told by a bright square's colour channel: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, 64, 64, 3), dtype=np.uint8)
    for i, y in enumerate(labels):
        r, c = rng.integers(0, 48, 2)
        images[i, r : r + 16, c : c + 16, y] = 255
    return ArrayDataset(images, labels)


def splits() -> Splits:
    return Splits(colour_dataset(48, 0), colour_dataset(12, 1), None, ["c0", "c1", "c2"], False)


def losses(trainer: Trainer) -> tuple[float, float]:
    """DCG and diffusion losses on the whole training set with fixed noise."""
    model, data = trainer.model, trainer.splits.train
    model.eval()
    x = normalise(data.images, model.config)
    y = torch.as_tensor(data.labels)
    with torch.no_grad():
        g = model.dcg(x)
        d = diffusion_loss(
            model.denoiser,
            model.denoiser.encode(x),
            torch.nn.functional.one_hot(y, 3).float(),
            g,
            model.diffusion,
            0.5,
            3.0,
            torch.Generator().manual_seed(0),
        )
    return dcg_loss(g, y).item(), d.total.item()


@pytest.mark.slow
def test_training_lowers_both_losses_and_saves_the_best_model(tmp_path):
    tc = TrainConfig(
        out_dir=str(tmp_path / "run"),
        dcg_epochs=8,
        diffusion_epochs=6,
        batch_size=8,
        val_steps=5,
        dcg_lr=3e-3,
        lr=3e-3,
        augment=False,
    )
    trainer = Trainer(tiny_config(3), tc, splits())
    dcg_before, diff_before = losses(trainer)
    assert trainer.run()
    dcg_after, diff_after = losses(trainer)
    assert dcg_after < 0.8 * dcg_before
    assert diff_after < 0.8 * diff_before
    model = load_pretrained(tmp_path / "run")  # the best EMA model, calibrated
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert [h["stage"] for h in log["history"]] == ["dcg"] * 8 + ["diffusion"] * 6
    assert model.config.temperature == log["temperature"] and model.config.temperature > 0


def test_stopped_run_resumes_where_it_stopped(tmp_path):
    tc = TrainConfig(
        out_dir=str(tmp_path / "run"),
        dcg_epochs=2,
        diffusion_epochs=1,
        batch_size=16,
        val_steps=2,
        max_steps_per_stage=None,
        max_minutes=0.0,
    )
    first = Trainer(tiny_config(3), tc, splits())
    assert not first.run()  # out of time right after the first step: checkpoint written
    saved = json.loads(torch.load(first.checkpoint_path, weights_only=True)["state"])
    assert saved["stage"] == "dcg" and saved["batch"] == 1
    tc.max_minutes = None
    second = Trainer(tiny_config(3), tc, splits())
    assert second.resume()
    assert torch.equal(second.model.dcg.cam_head.weight, first.model.dcg.cam_head.weight)
    assert second.run()
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_resume_refuses_another_config(tmp_path):
    tc = TrainConfig(out_dir=str(tmp_path / "run"), max_minutes=0.0)
    Trainer(tiny_config(3), tc, splits()).run()
    other = Trainer(tiny_config(3, feature_dim=16), tc, splits())
    try:
        other.resume()
    except ValueError as err:
        assert "another model config" in str(err)
    else:
        raise AssertionError("resume accepted a checkpoint of another config")


def test_epoch_batches_are_a_seeded_permutation():
    class One:
        world, rank = 1, 0

    a = epoch_batches(50, 16, seed=1, epoch=0, dist=One())
    assert sorted(np.concatenate(a).tolist()) == list(range(50))
    assert [len(b) for b in a] == [16, 16, 16, 2]
    assert all(np.array_equal(x, y) for x, y in zip(a, epoch_batches(50, 16, 1, 0, One()), strict=True))
    assert not np.array_equal(a[0], epoch_batches(50, 16, 1, 1, One())[0])


def test_fit_temperature_prefers_sharper_softmax_for_confident_correct_predictions():
    labels = np.arange(30) % 3
    y0 = np.eye(3)[labels][:, None, :] * 0.5  # correct but timid label vectors
    assert fit_temperature(y0, labels) < 0.2
    wrong = np.eye(3)[(labels + 1) % 3][:, None, :] * 3.0  # confidently wrong
    assert fit_temperature(wrong, labels) > 2.0
