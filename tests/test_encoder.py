"""The denoiser's own encoder: a stage of its own (cross-entropy, then frozen and cached), added to a saved
model; bfloat16 autocast of the image stages; training on sharded generated data."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from diffmic.conditioning import ConditioningCache
from diffmic.data.datasets import batch_of, synthetic_splits
from diffmic.losses import global_loss
from diffmic.model import DiffMIC
from diffmic.precision import autocast, bfloat16_supported, training_dtype
from diffmic.train import Trainer
from diffmic.transforms import normalise
from tests.helpers import TINY, tiny_config
from tests.test_train import config, splits


def encoder_config(**overrides):
    return tiny_config(3, **{"encoder_backbone": TINY, "encoder_view": "full", **overrides})


def test_the_encoder_reads_the_view_its_config_names():
    model = DiffMIC(encoder_config()).eval()
    x = torch.randn(2, 3, 128, 128)
    assert model.encoder_input(x).shape[-1] == 128
    model.config.encoder_view = "global"
    assert model.encoder_input(x).shape[-1] == 64
    features, logits = model.encode(x)
    assert features.shape[0] == 2 and logits.shape == (2, 3)
    with pytest.raises(ValueError, match="no encoder"):
        DiffMIC(tiny_config(3)).encode(x)


@pytest.mark.slow
def test_the_encoder_stage_learns_then_is_frozen_and_cached(tmp_path):
    run = tmp_path / "run"
    tc = config(out_dir=str(run), global_epochs=1, local_epochs=1, encoder_epochs=5, diffusion_epochs=4)
    trainer = Trainer(encoder_config(), tc, splits())
    start = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    assert trainer.run()
    log = json.loads((run / "train_log.json").read_text())
    stages = [h["stage"] for h in log["history"]]
    assert stages.count("encoder") == 5 and stages.index("encoder") < stages.index("cache")
    scores = [h["encoder"] for h in log["history"] if h["stage"] == "encoder"]
    assert max(scores) > 0.6  # the colour squares are learnt (chance: 1/3)
    model = DiffMIC.from_pretrained(run)
    trained = model.encoder.state_dict()
    assert any(
        not torch.equal(trained[k].float(), start[k].float()) for k in start if start[k].is_floating_point()
    )
    # the cache the denoiser trained on holds the frozen encoder's features of the same view, live
    cache = ConditioningCache.load(run / "conditioning.npz")
    pixels, _ = batch_of(trainer.splits.train, np.arange(6))
    with torch.no_grad(), autocast(trainer.device, trainer.dtype):  # the cache is built as the stages ran
        live, _ = trainer.model.eval().encode(normalise(pixels.numpy(), model.config))
    width = live.shape[1]
    np.testing.assert_allclose(cache.features[:6, 0, :width], live.float().numpy(), atol=1e-4)


@pytest.mark.slow
def test_an_encoder_is_added_to_a_saved_model_from_the_encoder_stage(tmp_path):
    tc = config(out_dir=str(tmp_path / "plain"), global_epochs=1, local_epochs=1, diffusion_epochs=2)
    plain = Trainer(tiny_config(3), tc, splits())
    assert plain.run()
    tc = config(out_dir=str(tmp_path / "enc"), encoder_epochs=2, diffusion_epochs=2)
    cfg = replace(
        DiffMIC.from_pretrained(tmp_path / "plain").config, encoder_backbone=TINY, encoder_view="full"
    )
    added = Trainer(cfg, tc, splits())
    with pytest.raises(ValueError, match="from the encoder stage"):
        added.start_from(tmp_path / "plain", "diffusion")
    added.start_from(tmp_path / "plain", "encoder")
    assert added.state.history[-1]["new"] == ["encoder_backbone", "encoder_view"]
    saved = DiffMIC.from_pretrained(tmp_path / "plain").state_dict()
    for key, value in added.model.dcg.state_dict().items():  # the DCG is the saved one
        assert torch.equal(value, saved[f"dcg.{key}"].to(value.dtype))
    assert added.run()
    assert DiffMIC.from_pretrained(tmp_path / "enc").encoder is not None
    # and taken away again (the same DCG, conditioned on its own features): the denoiser starts afresh
    plain_cfg = replace(DiffMIC.from_pretrained(tmp_path / "enc").config, encoder_backbone=None)
    removed = Trainer(plain_cfg, config(out_dir=str(tmp_path / "none"), diffusion_epochs=2), splits())
    removed.start_from(tmp_path / "enc", "encoder")
    assert removed.state.stage == "diffusion" and removed.state.history[-1]["new"] == ["encoder_backbone"]
    assert removed.run() and DiffMIC.from_pretrained(tmp_path / "none").encoder is None


def test_precision_is_bfloat16_only_where_the_hardware_has_it():
    cpu = torch.device("cpu")
    assert training_dtype("float32", cpu) == torch.float32
    assert training_dtype("bfloat16", cpu) == torch.bfloat16
    expected = torch.bfloat16 if bfloat16_supported(cpu) else torch.float32
    assert training_dtype("auto", cpu) == expected
    assert training_dtype("auto", torch.device("meta")) == torch.float32
    with pytest.raises(ValueError, match="precision"):
        training_dtype("float16", cpu)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_training_on_sharded_generated_data_lowers_the_loss(tmp_path, precision):
    data = synthetic_splits("placenta", 40, 0, 128, seed=0)
    cfg = tiny_config(4, class_names=["0", "1", "2", "3"])
    tc = config(out_dir=str(tmp_path / "run"), precision=precision, global_lr=3e-3)
    trainer = Trainer(cfg, tc, data)
    batch = np.arange(8)

    def loss() -> float:
        trainer.model.eval()
        pixels, labels = batch_of(data.train, batch)
        with torch.no_grad():
            return global_loss(
                trainer.model.dcg.global_branch(normalise(pixels.numpy(), cfg))[1], labels
            ).item()

    before = loss()
    for _ in range(30):
        trainer._step("global", batch)
    assert loss() < 0.5 * before


def test_the_encoder_may_start_from_the_trained_global_network(tmp_path):
    tc = config(out_dir=str(tmp_path), encoder_init="global")
    trainer = Trainer(encoder_config(), tc, splits())
    model = trainer.model
    assert not torch.equal(model.encoder.conv_stem.weight, model.dcg.global_net.conv_stem.weight)
    trainer._finish_stage("local")  # the local stage's end: the encoder stage begins
    assert trainer.state.stage == "encoder"
    for name, value in model.dcg.global_net.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[name], value)
    torch.testing.assert_close(
        trainer.ema.shadow["0.conv_stem.weight"], model.dcg.global_net.conv_stem.weight
    )
    with pytest.raises(ValueError, match="one backbone for both"):
        Trainer(encoder_config(encoder_backbone="test_resnet"), tc, splits())
