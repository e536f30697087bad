"""The bundled example images: at least 3 per task, named with their true label, reproducible."""

from pathlib import Path

import numpy as np
from PIL import Image

from diffmic.data.synthetic import TASKS
from diffmic.data.synthetic.examples import write_examples
from diffmic.imageio import load_image

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def test_every_task_has_examples_of_every_class():
    for task, spec in TASKS.items():
        files = sorted((ASSETS / task).glob("*.png"))
        assert len(files) >= 3
        labels = {int(f.name.split("_")[0]) for f in files}
        assert labels == set(range(spec.num_classes)), task


def test_examples_are_reproducible_from_the_generator(tmp_path):
    written = write_examples(tmp_path)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == sum(s.num_classes for s in TASKS.values())
    for path in pngs:
        bundled = ASSETS / path.relative_to(tmp_path)
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(bundled))), bundled


def test_dicom_example_loads_like_its_png():
    dcm = np.asarray(load_image(ASSETS / "placenta" / "2_grade_ii_0.dcm"))
    png = np.asarray(load_image(ASSETS / "placenta" / "2_grade_ii_0.png"))
    assert dcm.shape == png.shape
    assert np.abs(dcm.astype(int) - png.astype(int)).mean() < 2
