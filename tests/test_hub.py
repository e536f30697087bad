"""Saving and loading: round trip, the Hub cache offline, and every broken checkpoint refused clearly."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from diffmic.hub import ModelLoadError, resolve_folder
from diffmic.model import DiffMIC
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.helpers import random_image, tiny_model


@pytest.fixture
def saved(tmp_path):
    model = tiny_model(3)
    model.save_pretrained(tmp_path / "m")
    return model, tmp_path / "m"


def test_round_trip_gives_identical_outputs(saved):
    model, folder = saved
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    loaded = DiffMIC.from_pretrained(folder)
    assert loaded.config == model.config
    img = random_image()
    a = DiffMICPipeline(model)(img, SamplingOptions(sampler="ddim", steps=10, samples=3, seed=1))
    b = DiffMICPipeline(loaded)(img, SamplingOptions(sampler="ddim", steps=10, samples=3, seed=1))
    assert np.array_equal(a.sample_probs, b.sample_probs) and a.prior == b.prior
    assert "not for clinical use" in (folder / "README.md").read_text()


def test_loads_from_hub_cache_offline(saved, tmp_path, monkeypatch):
    """A repo id resolves from a cache laid out as the Hub's, with HF_HUB_OFFLINE=1 (set in conftest)."""
    import huggingface_hub.constants as hf_constants

    _, folder = saved
    cache = tmp_path / "hub"
    snap = cache / "models--demo-org--diffmic-tiny" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, snap)
    (cache / "models--demo-org--diffmic-tiny" / "refs").mkdir()
    (cache / "models--demo-org--diffmic-tiny" / "refs" / "main").write_text(snap.name)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    assert resolve_folder("demo-org/diffmic-tiny") == snap
    model = DiffMIC.from_pretrained("demo-org/diffmic-tiny")
    assert model.config.class_names == ["c0", "c1", "c2"]


def test_unknown_repo_offline_gives_one_clear_message(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="cannot reach the Hugging Face Hub.*not in the local cache"):
        DiffMIC.from_pretrained("nobody/no-such-model")


@pytest.mark.parametrize("bad", ["../etc", "a/b/c", "not a repo!", "/no/such/folder"])
def test_invalid_repo_ids_are_refused_before_any_download(bad):
    with pytest.raises(ModelLoadError, match="neither a local folder nor a valid Hub repo id"):
        resolve_folder(bad)


def test_missing_config(saved):
    _, folder = saved
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="missing config file"):
        DiffMIC.from_pretrained(folder)


def test_config_with_unknown_keys(saved):
    _, folder = saved
    data = json.loads((folder / "config.json").read_text())
    data["num_heads"] = 8
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="unknown keys: num_heads"):
        DiffMIC.from_pretrained(folder)


def test_missing_weights_and_pickles_are_never_loaded(saved):
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing weights file model.safetensors"):
        DiffMIC.from_pretrained(folder)
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle file, which is never loaded"):
        DiffMIC.from_pretrained(folder)


def test_truncated_weights(saved):
    _, folder = saved
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        DiffMIC.from_pretrained(folder)


def test_checkpoint_for_another_class_count(saved, tmp_path):
    _, folder = saved
    other = tiny_model(5)
    other.save_pretrained(tmp_path / "five")
    shutil.copy(tmp_path / "five" / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="weights are for 5 classes but config.json lists 3"):
        DiffMIC.from_pretrained(folder)


def test_wrong_shapes_and_missing_tensors(saved):
    _, folder = saved
    state = load_file(folder / "model.safetensors")
    state["denoiser.project.0.weight"] = torch.zeros(7, 7)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="wrong shape.*denoiser.project.0.weight"):
        DiffMIC.from_pretrained(folder)
    del state["denoiser.project.0.weight"]
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="1 missing tensors"):
        DiffMIC.from_pretrained(folder)


def test_config_that_does_not_match_the_weights(saved):
    _, folder = saved
    data = json.loads((folder / "config.json").read_text())
    data["encoder_backbone"] = "test_resnet"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="do not match config.json"):
        DiffMIC.from_pretrained(folder)


def test_a_file_instead_of_a_folder(saved):
    _, folder = saved
    with pytest.raises(ModelLoadError, match="is a file"):
        DiffMIC.from_pretrained(folder / "config.json")


def test_half_precision_weights_load_as_float32_with_close_outputs(tmp_path):
    model = tiny_model(3)
    model.save_pretrained(tmp_path / "half", half=True)
    assert load_file(tmp_path / "half" / "model.safetensors")["denoiser.out.weight"].dtype == torch.float16
    loaded = DiffMIC.from_pretrained(tmp_path / "half")
    assert loaded.denoiser.out.weight.dtype == torch.float32
    img = random_image()
    a = DiffMICPipeline(model)(img, SamplingOptions(sampler="ddim", steps=10, seed=0))
    b = DiffMICPipeline(loaded)(img, SamplingOptions(sampler="ddim", steps=10, seed=0))
    assert max(abs(a.prior["fused"][c] - b.prior["fused"][c]) for c in a.prior["fused"]) < 0.02


def test_push_to_hub_uploads_config_weights_and_card(monkeypatch):
    import huggingface_hub

    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            uploaded["repo"] = (repo_id, private)
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, repo_id, folder_path, commit_message):
            from pathlib import Path

            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = tiny_model(3).push_to_hub("demo-org/diffmic-tiny", private=True)
    assert url.endswith("demo-org/diffmic-tiny") and uploaded["repo"] == ("demo-org/diffmic-tiny", True)
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    with pytest.raises(ModelLoadError, match="not a valid Hub repo id"):
        tiny_model(3).push_to_hub("not a repo")
