"""The plain-CNN baseline: DiffMIC's global network as a classifier of its own, trained or exported."""

import dataclasses
import json

import pytest
import torch

from diffmic.baseline import export_global_network, train_cnn
from diffmic.baseline_model import CNNClassifier, CNNConfig, predict_probs
from diffmic.train import TrainConfig
from tests.helpers import tiny_config, tiny_model
from tests.test_train import splits


def test_exported_global_network_gives_the_global_prior(tmp_path):
    model = tiny_model(3, top_percent=0.25)
    model.save_pretrained(tmp_path / "model")
    export_global_network(tmp_path / "model", tmp_path / "cnn")
    cnn = CNNClassifier.from_pretrained(tmp_path / "cnn")  # float16 on disk, as bundled
    x = torch.randn(
        4, 3, model.config.input_size, model.config.input_size, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        expected = model.dcg.global_branch(x)[1]
        got = cnn(x)
    assert cnn.config.output_stride == 16 and cnn.config.top_percent == 0.25
    assert torch.allclose(got, expected, atol=5e-2)  # the half-precision round trip
    assert not torch.allclose(got, cnn(x.flip(-1)), atol=1e-3)  # it reads the image
    assert json.loads((tmp_path / "cnn" / "train_log.json").read_text())["exported_from"] == str(
        tmp_path / "model"
    )


def test_training_learns_saves_the_best_and_resumes(tmp_path):
    data = splits()
    config = CNNConfig.like(tiny_config(3))
    tc = TrainConfig(global_epochs=1, patience=3, batch_size=8)
    first = train_cnn(config, data, tmp_path, tc)
    assert first.epoch == 1 and (tmp_path / "model.safetensors").is_file()
    more = train_cnn(config, data, tmp_path, TrainConfig(global_epochs=6, patience=3, batch_size=8))
    assert more.epoch > 1 and more.history[0] == first.history[0]  # continued, not restarted
    probs = predict_probs(CNNClassifier.from_pretrained(tmp_path), data.val)
    accuracy = (probs.argmax(-1) == data.val.labels).mean()
    assert accuracy > 0.6, accuracy  # the colour squares are learnt (chance: 1/3)


def test_the_baseline_trained_like_a_run_reports_that_runs_recipe(tmp_path):
    """``--like RUN``: the CNN is the run's global network, trained by the run's global-stage settings; its
    log reports the recipe it was trained by, and that recipe is the run's."""
    from diffmic.baseline import RECIPE_FIELDS, recipe_of_run

    run = tmp_path / "run"
    model = tiny_model(3, top_percent=0.25)
    model.save_pretrained(run)
    run_tc = TrainConfig(global_epochs=2, patience=4, batch_size=8, global_lr=2e-3, seed=3, lr=5e-4)
    data = splits()
    log = {
        "train_config": dataclasses.asdict(run_tc),
        "data": {"train": len(data.train), "validation": len(data.val)},
    }
    (run / "train_log.json").write_text(json.dumps(log, default=str))
    config, tc, size = recipe_of_run(run)
    assert config == CNNConfig.like(model.config) and size == len(data.train) + len(data.val)
    assert tc.lr == TrainConfig().lr  # the denoiser's settings are not the baseline's
    train_cnn(config, data, tmp_path / "cnn", tc)
    reported = json.loads((tmp_path / "cnn" / "train_log.json").read_text())["recipe"]
    assert reported == {**{k: getattr(run_tc, k) for k in RECIPE_FIELDS}, "data": log["data"]}
    assert CNNClassifier.from_pretrained(tmp_path / "cnn").config.to_dict() == config.to_dict()


def test_the_baseline_like_a_runs_encoder_reads_the_encoders_view_for_both_stages_epochs(tmp_path):
    """``--like RUN --network encoder``: the encoder's backbone at its view (the full input: no pooling),
    stride 32 and a plain linear head; capped at the global stage's epochs plus the encoder stage's."""
    from diffmic.baseline import recipe_of_run
    from diffmic.hub import ModelLoadError
    from tests.helpers import TINY

    run = tmp_path / "run"
    model = tiny_model(3, encoder_backbone=TINY, encoder_view="full")
    model.save_pretrained(run)
    run_tc = TrainConfig(global_epochs=3, encoder_epochs=2, patience=2, batch_size=8)
    data = {"train": 40, "validation": 10}
    log = {"train_config": dataclasses.asdict(run_tc), "data": data}
    (run / "train_log.json").write_text(json.dumps(log, default=str))
    config, tc, size = recipe_of_run(run, "encoder")
    assert (config.backbone, config.image_size, config.input_scale) == (TINY, model.config.input_size, 1)
    assert (config.output_stride, config.top_percent, config.input_size) == (32, 1.0, model.config.input_size)
    assert (tc.global_epochs, tc.patience, tc.batch_size, size) == (5, 2, 8, 50)
    cnn = CNNClassifier(config).eval()
    x = torch.randn(2, 3, config.input_size, config.input_size)
    with torch.no_grad():
        logits, features = cnn(x), model.encoder(x)
    assert logits.shape == (2, 3) and features.shape[1] == model.encoder_head.in_features
    global_view = recipe_of_run(run)[0]  # the default: the global network's view, pooled by local_scale
    assert (global_view.image_size, global_view.input_scale) == (
        model.config.image_size,
        model.config.local_scale,
    )
    tiny_model(3).save_pretrained(tmp_path / "plain")
    (tmp_path / "plain" / "train_log.json").write_text(json.dumps(log, default=str))
    with pytest.raises(ModelLoadError, match="no encoder"):
        recipe_of_run(tmp_path / "plain", "encoder")


def test_a_run_without_its_data_sizes_is_refused(tmp_path):
    from diffmic.baseline import recipe_of_run
    from diffmic.hub import ModelLoadError

    tiny_model(3).save_pretrained(tmp_path)
    (tmp_path / "train_log.json").write_text(json.dumps({"train_config": {}}))
    with pytest.raises(ModelLoadError, match="data sizes"):
        recipe_of_run(tmp_path)
