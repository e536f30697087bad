"""The bundled models' ROI patches lie on the tissue: on every example image, no crop is mostly the dark
background around a fundus photograph or an ultrasound sector."""

from pathlib import Path

import numpy as np
import pytest

from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
DARK = 16  # a pixel whose brightest channel is below this (of 255) is background
MOST = 0.5


def dark_share(crop: np.ndarray) -> float:
    """Fraction of a uint8 (h, w, 3) crop's pixels that are background-dark."""
    return float((crop.max(-1) < DARK).mean())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_no_roi_crop_is_mostly_background(task):
    pipe = DiffMICPipeline.from_pretrained(ROOT / "weights" / task)
    examples = sorted((ROOT / "assets" / task).glob("*.png"))
    assert examples, f"no example images of {task}"
    shares = {}
    for path in examples:
        rois = pipe.regions(pipe.prepare(path))
        assert len(rois.crops) == pipe.config.num_crops
        shares[path.name] = [round(dark_share(c), 2) for c in rois.crops]
    worst = {name: max(s) for name, s in shares.items()}
    assert max(worst.values()) <= MOST, shares


def test_dark_share_tells_background_from_tissue():
    tissue = np.full((8, 8, 3), 120, np.uint8)
    rim = tissue.copy()
    rim[:, :5] = 3
    assert dark_share(tissue) == 0 and dark_share(rim) == 5 / 8
