"""The plain-CNN baseline: DiffMIC's global network as a classifier of its own, trained or exported."""

import json

import torch

from diffmic.baseline import CNNClassifier, CNNConfig, export_global_network, predict_probs, train_cnn
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
