"""Grad-CAM explains the answer: on a model whose global network sees each class's evidence in its own
colour, and an image with a patch of each colour in its own place, the map of a class peaks on that class's
patch — in ``grad_cam`` for every class and variant, in the pipeline's ``explain=True`` result and in the
app's Grad-CAM map, both made for the answer's class (a run whose answer is not class 0 is picked, so a map
made for class 0 cannot pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from app.diagnose import Diagnosis
from app.diagnose_frames import OUTPUTS
from app.models import Selection
from diffmic.explain import CAM_METHODS, grad_cam
from diffmic.model import DiffMIC
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.helpers import tiny_model

# (row, column) slices of each class's patch in the 128-px input: red, green, blue
PATCHES = [
    (slice(8, 32), slice(8, 32)),
    (slice(8, 32), slice(96, 120)),
    (slice(96, 120), slice(40, 64)),
]
MARGIN = 6  # px: Grad-CAM is made at the global view's resolution (half the input) and upsampled


class ColourNet(nn.Module):
    """Stands in for the global backbone: feature channel k < 3 is how purely a pixel has colour k (red,
    green, blue), averaged over each CAM cell; the other channels stay zero."""

    def __init__(self, width: int, cell: int):
        super().__init__()
        self.colour = nn.Conv2d(3, width, kernel_size=1)
        with torch.no_grad():
            self.colour.weight.zero_()
            self.colour.bias.fill_(-1.0)
            for k in range(3):  # colour k minus half the other two: positive only on pure colour k
                self.colour.weight[k, :, 0, 0] = -0.5
                self.colour.weight[k, k, 0, 0] = 1.0
        self.cells = nn.AvgPool2d(cell)
        self.feature_info = [{"module": "colour"}, {"module": "colour"}]  # stages -2 and -1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.cells(F.relu(self.colour(x)))


def colour_model() -> DiffMIC:
    """A tiny DiffMIC whose global classifier scores class k by the colour-k area (its CAM head reads
    feature channel k for class k)."""
    model = tiny_model(3, seed=2)
    dcg, cfg = model.dcg, model.config
    dcg.global_net = ColourNet(dcg.global_dim, cfg.image_size // cfg.cam_size)
    with torch.no_grad():
        dcg.cam_head.weight.zero_()
        dcg.cam_head.bias.zero_()
        for k in range(3):
            dcg.cam_head.weight[k, k, 0, 0] = 1.0
    return model.eval()


def three_patches() -> np.ndarray:
    """Grey 128-px image with a red, a green and a blue patch (class 0, 1, 2) in different places."""
    image = np.full((128, 128, 3), 128, np.uint8)
    for k, (rows, cols) in enumerate(PATCHES):
        image[rows, cols] = 0
        image[rows, cols, k] = 255
    return image


def peak_class(heat: np.ndarray) -> int | None:
    """The class whose patch (with MARGIN) holds the map's maximum; None when it is on no patch."""
    assert heat.shape == (128, 128) and heat.max() > 0
    r, c = divmod(int(heat.argmax()), heat.shape[1])
    for k, (rows, cols) in enumerate(PATCHES):
        if rows.start - MARGIN <= r < rows.stop + MARGIN and cols.start - MARGIN <= c < cols.stop + MARGIN:
            return k
    return None


@pytest.fixture(scope="module")
def pipe() -> DiffMICPipeline:
    return DiffMICPipeline(colour_model())


@pytest.fixture(scope="module")
def run_not_class_0(pipe) -> SamplingOptions:
    """Options of a run whose answer is not class 0 (the denoiser is random: the seed decides)."""
    for seed in range(40):
        options = SamplingOptions(sampler="ddim", steps=5, samples=3, seed=seed)
        if pipe(three_patches(), options).label_index != 0:
            return options
    raise AssertionError("no seed gave an answer other than class 0")


@pytest.mark.parametrize("method", CAM_METHODS)
def test_each_class_map_peaks_on_that_class_evidence(pipe, method):
    x, _ = pipe.preprocess(three_patches())
    with torch.no_grad():
        logits = pipe.model.dcg(x).global_logits[0]
    assert (logits > 0.05).all()  # every class has evidence in the image
    maps = [grad_cam(pipe.model, x, k, method=method, stage=-1) for k in range(3)]
    assert [peak_class(m) for m in maps] == [0, 1, 2]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(maps[a] - maps[b]).max() > 0.5  # each class has its own map


def test_the_pipeline_explains_its_answer(pipe, run_not_class_0):
    out = pipe(three_patches(), run_not_class_0, explain=True)
    assert out.label_index != 0 and out.gradcam is not None
    assert peak_class(out.gradcam) == out.label_index


def test_the_app_grad_cam_is_of_the_answer(pipe, run_not_class_0, tmp_path):
    class OneModel:
        """The app's model registry, holding the constructed model."""

        def get(self, choice: str) -> Selection:
            return Selection(pipe, "constructed model", choice)

        def models_accepting(self, image, task) -> list[str]:
            return []

    path = tmp_path / "patches.png"
    Image.fromarray(three_patches()).save(path)
    o = run_not_class_0
    frames = list(
        Diagnosis(OneModel(), interval_s=60.0).run(str(path), "m", o.sampler, o.steps, o.samples, o.seed)
    )
    final = dict(zip(OUTPUTS, frames[-1], strict=True))
    answer = pipe.config.class_names.index(final["json"]["label"])
    assert answer != 0
    assert peak_class(final["maps"].gradcam_map()) == answer
