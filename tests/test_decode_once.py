"""An upload is decoded once: the preview decodes it, the run and the sampler switch's rerun use that decode,
and the pipeline does not check a decoded image again; a bad file is refused once, by that decode."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.diagnose import Diagnosis
from app.diagnose_frames import OUTPUTS
from app.errors import UserError
from app.models import ModelRegistry
from app.uploads import Uploads, decode_upload, upload_key
from diffmic import imageio
from diffmic.imageio import DecodedImage, decode
from tests.helpers import random_image
from tests.test_app_support import make_app_dirs, random_png
from tests.test_pipeline import tiny_pipeline


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> ModelRegistry:
    return ModelRegistry(make_app_dirs(tmp_path_factory.mktemp("decode"), n_examples=1))


@pytest.fixture
def decodes(monkeypatch) -> list[tuple[int, int]]:
    """Every decode and check of an image (``imageio._pil_to_rgb``: each file, bytes or PIL image that
    ``load_image`` takes goes through it), as the sizes it saw."""
    seen: list[tuple[int, int]] = []
    real = imageio._pil_to_rgb

    def counted(image, max_pixels):
        seen.append(image.size)
        return real(image, max_pixels)

    monkeypatch.setattr(imageio, "_pil_to_rgb", counted)
    return seen


def final(frames) -> dict:
    return dict(zip(OUTPUTS, list(frames)[-1], strict=True))


def test_preview_run_and_rerun_decode_the_upload_once(registry, tmp_path, decodes):
    path = str(random_png(tmp_path / "eye.png", 96))
    diagnosis = Diagnosis(registry)
    preview, *_ = diagnosis.preview(path)
    assert preview.shape == (96, 96, 3) and decodes == [(96, 96)]
    answer = final(diagnosis.run(path, "fundus", "DDIM", 5, 2, 0))["json"]
    again = final(diagnosis.rerun(object(), path, "fundus", "DDPM", 5, 2, 0))["json"]
    assert decodes == [(96, 96)]  # preview + run + rerun: one decode
    assert answer["sampler"] == "ddim" and again["sampler"] == "ddpm"
    # the answer is the one a fresh decode gives
    fresh = registry.get("fundus").pipe(path, diagnosis_options(answer))
    label = answer["label"]
    assert fresh.label == label and np.isclose(fresh.probabilities[label], answer["probabilities"][label])


def diagnosis_options(answer: dict):
    from diffmic.options import SamplingOptions

    return SamplingOptions(answer["sampler"], answer["steps"], answer["samples"], answer["seed"])


def test_a_new_upload_is_decoded_and_the_old_one_let_go(registry, tmp_path, decodes):
    first = str(random_png(tmp_path / "a.png", 64))
    second = str(random_png(tmp_path / "b.png", 80))
    diagnosis = Diagnosis(registry)
    diagnosis.preview(first)
    diagnosis.preview(second)
    final(diagnosis.run(second, "fundus", "DDIM", 2, 1, 0))
    assert decodes == [(64, 64), (80, 80)]
    final(diagnosis.run(first, "fundus", "DDIM", 2, 1, 0))  # the page shows another file now: decoded anew
    assert decodes == [(64, 64), (80, 80), (64, 64)]


def test_a_bad_file_is_refused_once_with_the_same_message(registry, tmp_path, decodes):
    good = random_png(tmp_path / "good.png", 64).read_bytes()
    bad = tmp_path / "broken.png"
    bad.write_bytes(good[: len(good) // 2])
    diagnosis = Diagnosis(registry)
    preview, *outputs = diagnosis.preview(str(bad))
    said = dict(zip(OUTPUTS, outputs, strict=True))["error"]["value"]
    frames = list(diagnosis.run(str(bad), "fundus", "DDIM", 2, 1, 0))
    assert preview is None and len(frames) == 1 and len(decodes) == 1
    assert (
        "corrupt or truncated" in said
        and said == dict(zip(OUTPUTS, frames[0], strict=True))["error"]["value"]
    )


def test_the_predict_api_decodes_once(registry, tmp_path, decodes):
    path = str(random_png(tmp_path / "api.png", 72))
    assert Diagnosis(registry).predict(path, "fundus", "ddim", 2, 1, 0)["label"]
    assert decodes == [(72, 72)]


def test_the_pipeline_takes_a_decoded_image_as_it_is(decodes):
    pipe = tiny_pipeline(3)
    image = Image.fromarray(random_image(seed=3))
    decoded = decode(image)
    assert isinstance(decoded, DecodedImage) and len(decodes) == 1
    x, pixels = pipe.preprocess(decoded)
    assert len(decodes) == 1  # no second check, no copy
    x2, pixels2 = pipe.preprocess(image)  # anything else is checked there
    assert len(decodes) == 2 and np.array_equal(pixels, pixels2) and np.allclose(x, x2)
    assert pipe.check_distribution(decoded) == pipe.check_distribution(image)


def test_kept_uploads_are_bounded_and_a_changed_file_is_decoded_again(tmp_path):
    calls: list[str] = []

    def decoder(file):
        calls.append(file)
        return decode_upload(file)

    uploads = Uploads(kept_sessions=2, kept_pixels=10**9, decode=decoder)
    paths = [str(random_png(tmp_path / f"{i}.png", 32)) for i in range(3)]
    for i, path in enumerate(paths):
        uploads.decoded(f"s{i}", path)
    uploads.decoded("s2", paths[2])  # kept
    uploads.decoded("s0", paths[0])  # let go: the two latest sessions only
    assert calls == [*paths, paths[0]]
    random_png(tmp_path / "2.png", 40)  # the same path, another file
    assert uploads.decoded("s2", paths[2]).size == (40, 40) and len(calls) == 5
    small = Uploads(kept_pixels=32 * 32, decode=decoder)  # room for one image: the latest stays
    small.decoded("a", paths[0])
    small.decoded("b", paths[1])
    small.decoded("b", paths[1])
    small.decoded("a", paths[0])
    assert len(calls) == 8
    with pytest.raises(UserError, match="upload an image"):
        uploads.decoded("s0", None)


def test_one_file_under_two_temporary_paths_is_one_upload(tmp_path):
    """A drop that replaces an image may reach the server twice, under two paths: decoded once, one key."""
    calls: list[str] = []
    uploads = Uploads(decode=lambda file: calls.append(file) or decode_upload(file))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = random_png(tmp_path / "a" / "x.png", 32)
    second = tmp_path / "b" / "x.png"
    second.write_bytes(first.read_bytes())
    assert upload_key(str(first)) == upload_key({"path": str(second)}) != upload_key(None) == ""
    assert uploads.decoded("s", str(first)) is uploads.decoded("s", str(second)) and len(calls) == 1
    other = random_png(tmp_path / "c.png", 33)
    assert upload_key(str(other)) != upload_key(str(first))
    assert upload_key(str(tmp_path / "gone.png")).startswith("missing:")


def test_the_command_line_decodes_an_image_once(registry, tmp_path, decodes, capsys):
    from diffmic.cli import main

    path = str(random_png(tmp_path / "eye.png", 80))
    model = str(registry.settings.weights_dir / "fundus")
    assert main(["predict", path, "--model", model, "--sampler", "ddim", "--steps", "3", "--json"]) == 0
    assert decodes == [(80, 80)]  # checked before the model loads, not again by the pipeline
    assert '"sampler": "ddim"' in capsys.readouterr().out
