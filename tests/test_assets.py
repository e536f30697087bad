"""The bundled example images: at least 3 per task, named with their true label, reproducible."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffmic.data.synthetic import GENERATORS
from diffmic.data.synthetic.examples import write_examples
from diffmic.imageio import load_image

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def test_every_task_has_examples_of_every_class():
    for task, spec in GENERATORS.items():
        files = sorted((ASSETS / task).glob("*.png"))
        assert len(files) >= 3
        labels = {int(f.name.split("_")[0]) for f in files}
        assert labels == set(range(spec.num_classes)), task


def assert_same_image(actual: np.ndarray, expected: np.ndarray, name: object) -> None:
    """Equal up to floating-point noise of other library versions: off by ≤ 1 in ≤ 0.1 % of pixels."""
    assert actual.shape == expected.shape, name
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    changed = diff.reshape(diff.shape[0], diff.shape[1], -1).any(-1).mean()  # fraction of pixels
    assert diff.max() <= 1 and changed <= 0.001, f"{name}: off by up to {diff.max()} in {changed:.3%}"


def test_examples_are_reproducible_from_the_generator(tmp_path):
    written = write_examples(tmp_path)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == sum(s.num_classes for s in GENERATORS.values())
    for path in pngs:
        bundled = ASSETS / path.relative_to(tmp_path)
        assert_same_image(np.asarray(Image.open(path)), np.asarray(Image.open(bundled)), bundled)


def test_image_tolerance_still_catches_real_changes():
    image = np.asarray(Image.open(ASSETS / "fundus" / "1_mild_0.png"))
    noise = image.copy()
    noise[7, 9, 1] ^= 1  # one channel of one pixel off by 1
    assert_same_image(noise, image, "noise")
    off_by_two = image.copy()
    off_by_two[7, 9, 1] ^= 2
    many = image.copy()
    many[0, :132, 0] ^= 1  # 132 of 65,536 pixels: 0.2 %
    for changed in (off_by_two, many, image[:-1]):
        with pytest.raises(AssertionError):
            assert_same_image(changed, image, "changed")


def test_dicom_example_loads_like_its_png():
    dcm = np.asarray(load_image(ASSETS / "placenta" / "2_grade_ii_0.dcm"))
    png = np.asarray(load_image(ASSETS / "placenta" / "2_grade_ii_0.png"))
    assert dcm.shape == png.shape
    assert np.abs(dcm.astype(int) - png.astype(int)).mean() < 2


def test_every_example_is_unambiguous_under_the_bayes_rule():
    """An example a model gets wrong is then the model's error: the Bayes rule on what the image shows
    names its label, with probability at least MIN_POSTERIOR (the old melanoma example was 0.11)."""
    from diffmic.data.synthetic.ceiling import bayes_posterior
    from diffmic.data.synthetic.examples import EXAMPLE_SEED, MIN_POSTERIOR, example_indices

    for task in GENERATORS:
        for label, indices in example_indices(task).items():
            labels, posterior = bayes_posterior(task, indices, EXAMPLE_SEED)
            assert (labels == label).all()
            assert (posterior.argmax(1) == label).all(), (task, label)
            assert (posterior[:, label] >= MIN_POSTERIOR).all(), (task, label, posterior)
