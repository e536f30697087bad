"""The command line: predict JSON schema, evaluate, train, and bad inputs ending in exit 2 with one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix

from diffmic.cli import main
from diffmic.data.fixtures import write_image_folder_fixture
from diffmic.data.readers import read_dataset
from diffmic.model import DiffMIC
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.estimator_reference import expected_answer
from tests.helpers import random_image, tiny_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    classes = ["Grade 0", "Grade I", "Grade II", "Grade III"]
    # a fitted temperature other than 1, as a trained model has
    tiny_model(4, class_names=classes, task="placenta", ordinal=True, temperature=0.3).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "eye.png"
    Image.fromarray(random_image()).save(path)
    return path


def test_predict_json_schema(model_dir, image_path, capsys):
    argv = ["predict", str(image_path), "--model", str(model_dir), "--sampler", "ddim", "--steps", "10"]
    assert main([*argv, "--samples", "4", "--seed", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"label", "probabilities", "prior", "uncertainty", "steps", "seconds"} <= out.keys()
    classes = ["Grade 0", "Grade I", "Grade II", "Grade III"]
    assert out["label"] in classes and list(out["probabilities"]) == classes
    assert set(out["prior"]) == {"global", "local", "fused"} and all(
        list(p) == classes for p in out["prior"].values()
    )
    assert out["steps"] == 10 and out["samples"] == 4 and out["sampler"] == "ddim"
    assert {"agreement", "p_value", "distinguishable", "std"} <= out["uncertainty"].keys()
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-5
    assert main([*argv, "--samples", "4", "--seed", "1", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["probabilities"] == out["probabilities"]  # seeded


def test_predict_plain_text(model_dir, image_path, capsys):
    assert (
        main(["predict", str(image_path), "--model", str(model_dir), "--sampler", "ddim", "--steps", "5"])
        == 0
    )
    out = capsys.readouterr().out
    assert "prior" in out and "Grade" in out.splitlines()[0]


def test_predict_says_a_close_call_as_the_json_does(model_dir, image_path, capsys):
    argv = ["predict", str(image_path), "--model", str(model_dir), "--sampler", "ddim", "--steps", "5"]
    seen = set()
    for seed in range(3):
        run = [*argv, "--samples", "6", "--seed", str(seed)]
        assert main([*run, "--json"]) == 0
        call = json.loads(capsys.readouterr().out)["uncertainty"]["close_call"]
        assert main(run) == 0
        text = capsys.readouterr().out
        seen.add(call["verdict"])
        if call["verdict"] == "clear":
            assert "close call" not in text and "tie between" not in text
        else:
            a, b = call["classes"]
            what = "tie" if call["verdict"] == "tie" else "close call"
            assert f"{what} between {a} and {b}" in text.splitlines()[1] and "--samples" in text
    assert "close" in seen  # an untrained model's answers are close calls


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"hello, not an image"), "not a recognised image"),
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p, format="PNG"), "at least 16"),
        (lambda p: None, "file not found"),
    ],
)
def test_bad_images_exit_2_with_one_line(model_dir, tmp_path, capsys, make, message):
    path = tmp_path / "upload.png"
    make(path)
    assert main(["predict", str(path), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_model_exit_2(image_path, tmp_path, capsys):
    assert main(["predict", str(image_path), "--model", str(tmp_path)]) == 2
    assert "missing config file" in capsys.readouterr().err
    assert main(["predict", str(image_path), "--model", "no-such-org/no-such-model"]) == 2
    assert "Hub" in capsys.readouterr().err


def test_bad_sampling_arguments_exit_2(model_dir, image_path, capsys):
    assert (
        main(["predict", str(image_path), "--model", str(model_dir), "--sampler", "ddim", "--steps", "0"])
        == 2
    )
    assert "steps must be >= 1" in capsys.readouterr().err
    assert main(["predict", str(image_path), "--model", str(model_dir), "--steps", "5000"]) == 2
    assert "steps must be between 1 and 100" in capsys.readouterr().err


def test_evaluate_on_an_image_folder(model_dir, tmp_path, capsys):
    root = write_image_folder_fixture(tmp_path / "pmg", "placenta", n_per_class=3, size=64, seed=0)
    sampling = ["--steps", "5", "--samples", "4", "--seed", "3"]
    assert main(["evaluate", "--model", str(model_dir), "--data", str(root), *sampling, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 12
    # every method's figures from the model's own answers on the same images, computed here
    records = read_dataset(root).records
    labels = np.array([r.label for r in records])
    model = DiffMIC.from_pretrained(model_dir)
    x, _ = DiffMICPipeline(model).preprocess([r.path for r in records])
    diffmic, _ = expected_answer(model, x, SamplingOptions(sampler="ddpm", steps=5, samples=4, seed=3))
    with torch.inference_mode():
        g = model.dcg(x)
    answers = {m: getattr(g, f"{m}_prior").numpy() for m in ("global", "local", "fused")}
    answers["diffmic"] = diffmic
    assert report["labels"] == labels.tolist() and report["predictions"] == diffmic.argmax(-1).tolist()
    for method, probs in answers.items():
        predicted = probs.argmax(-1)
        assert report[method]["accuracy"] == pytest.approx((predicted == labels).mean()), method
        assert report[method]["kappa_weights"] == "quadratic"
        expected = confusion_matrix(labels, predicted, labels=range(4)).tolist()
        assert report[method]["confusion_matrix"] == expected, method
    # --test-split: only the held-out part (20 % of each class) of the split the training run made
    args = [
        "evaluate",
        "--model",
        str(model_dir),
        "--data",
        str(root),
        "--steps",
        "5",
        "--json",
        "--test-split",
    ]
    assert main(args) == 0
    held_out = json.loads(capsys.readouterr().out)
    from diffmic.data.datasets import folder_splits

    assert held_out["n"] == len(folder_splits(root, 64, seed=0).test) < 12


@pytest.mark.slow
def test_train_on_a_folder_then_predict(tmp_path, capsys):
    root = write_image_folder_fixture(tmp_path / "pmg", "placenta", n_per_class=5, size=64, seed=0)
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(root),
        "--out",
        str(out),
        "--image-size",
        "64",
        "--global-backbone",
        "test_efficientnet",
        "--local-backbone",
        "test_efficientnet",
        "--crop-size",
        "16",
        "--num-crops",
        "2",
        "--feature-dim",
        "16",
        "--timesteps",
        "50",
        "--global-epochs",
        "1",
        "--local-epochs",
        "1",
        "--diffusion-epochs",
        "1",
        "--batch-size",
        "4",
    ]
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file() and (out / "checkpoint.pt").is_file()
    logged = json.loads((out / "train_log.json").read_text())["command"]  # the model card shows it
    assert logged == "python -m diffmic " + " ".join(argv)
    image = next(root.rglob("*.png"))
    assert main(["predict", str(image), "--model", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 50

    # one stage of the saved model further: its config and split, the local stage first
    more = ["train", "--data", str(root), "--out", str(tmp_path / "more"), "--init-from", str(out)]
    assert main([*more, "--local-epochs", "1", "--diffusion-epochs", "1", "--batch-size", "4"]) == 0
    log = json.loads((tmp_path / "more" / "train_log.json").read_text())
    assert log["history"][0]["stage"] == "local" and log["history"][0]["start_from"] == str(out)
    # ... with more ROI crops: no weight depends on the crop count, so the saved local branch is the start
    wider = [*more[:4], str(tmp_path / "wider"), *more[5:], "--num-crops", "3", "--roi-map", "predicted"]
    assert main([*wider, "--local-epochs", "1", "--diffusion-epochs", "1", "--local-lr", "2e-4"]) == 0
    log = json.loads((tmp_path / "wider" / "train_log.json").read_text())
    assert log["history"][0]["start_from"] == str(out) and log["train_config"]["local_lr"] == 2e-4
    cfg = json.loads((tmp_path / "wider" / "config.json").read_text())
    assert (cfg["num_crops"], cfg["roi_map"], cfg["crop_size"]) == (3, "predicted", 16)
    # ... with another local network: the global branch is kept, the local branch and denoiser are new
    other = [*more[:4], str(tmp_path / "other"), *more[5:], "--local-backbone", "test_resnet"]
    assert main([*other, "--local-epochs", "1", "--diffusion-epochs", "1", "--batch-size", "4"]) == 0
    log = json.loads((tmp_path / "other" / "train_log.json").read_text())
    assert log["history"][0]["new"] == ["local_backbone"] and "score" not in log["history"][0]
    assert json.loads((tmp_path / "other" / "config.json").read_text())["local_backbone"] == "test_resnet"
    capsys.readouterr()
    assert main([*other[:4], str(tmp_path / "late"), *other[5:], "--start-stage", "diffusion"]) == 2
    assert "trained from the local stage" in capsys.readouterr().err
    assert main([*other[:4], str(tmp_path / "late"), *other[5:], "--local-init", "global"]) == 2
    assert "one backbone for both branches" in capsys.readouterr().err
    # ... with an encoder of the denoiser's own, started from the global network, on the full input
    enc = [
        *more[:4],
        str(tmp_path / "enc"),
        *more[5:],
        "--start-stage",
        "encoder",
        "--encoder-init",
        "global",
    ]
    enc += ["--encoder-backbone", "test_efficientnet", "--encoder-view", "full", "--encoder-epochs", "1"]
    enc += ["--diffusion-epochs", "1", "--cache-views", "2", "--precision", "float32", "--batch-size", "4"]
    assert main(enc) == 0
    log = json.loads((tmp_path / "enc" / "train_log.json").read_text())
    assert log["history"][0]["new"] == ["encoder_backbone", "encoder_view"]
    assert [h["stage"] for h in log["history"][:2]] == ["encoder", "encoder"]
    tc = log["train_config"]
    assert (tc["encoder_init"], tc["cache_views"], tc["precision"], tc["encoder_epochs"]) == (
        "global",
        2,
        "float32",
        1,
    )
    cfg = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert (cfg["encoder_backbone"], cfg["encoder_view"]) == ("test_efficientnet", "full")
    # ... and removed again: the denoiser back on the DCG's features, retrained from the encoder stage on
    plain = [*enc[:4], str(tmp_path / "plain"), *enc[5:]]
    plain[plain.index("--init-from") + 1] = str(tmp_path / "enc")
    plain[plain.index("--encoder-backbone") + 1] = "none"
    del plain[plain.index("--encoder-init") : plain.index("--encoder-init") + 2]  # no encoder to start
    assert main(plain) == 0
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["encoder_backbone"] is None
    log = json.loads((tmp_path / "plain" / "train_log.json").read_text())
    assert log["history"][0]["new"] == ["encoder_backbone"] and log["history"][0]["stage"] == "diffusion"
    assert main([*more[:-1], str(tmp_path / "nothing")]) == 2
    assert "is not a model folder" in capsys.readouterr().err
    assert main(["train", "--task", "fundus", "--out", str(tmp_path / "x"), "--init-from", str(out)]) == 2
    assert "differ from the model's" in capsys.readouterr().err


def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "diffmic", "predict", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert res.returncode == 0 and "--sampler" in res.stdout and "--samples" in res.stdout
