"""Tests of the procedural medical-like image generators (diffmic.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffmic.data.synthetic import GENERATORS, generate_dataset, generate_sample, label_of
from diffmic.data.synthetic.preview import contact_sheet

TASK_NAMES = sorted(GENERATORS)


@pytest.fixture(scope="module", params=TASK_NAMES)
def dataset(request):
    """Four blocks of samples (balanced) per task at 64 px, generated once."""
    task = request.param
    n = 4 * GENERATORS[task].num_classes
    return task, generate_dataset(task, n, seed=7, size=64)


def test_task_specs():
    assert set(GENERATORS) == {"fundus", "derm", "placenta"}
    assert GENERATORS["fundus"].class_names == ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR")
    assert GENERATORS["fundus"].ordinal and GENERATORS["placenta"].ordinal and not GENERATORS["derm"].ordinal
    assert GENERATORS["placenta"].class_names == ("Grade 0", "Grade I", "Grade II", "Grade III")
    assert len(GENERATORS["derm"].class_names) == 4 and "MEL" in GENERATORS["derm"].class_names
    for spec in GENERATORS.values():
        assert spec.description and callable(spec.generate) and callable(spec.draw_plan)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_deterministic_and_dtypes(task):
    a = generate_sample(task, 5, seed=3, size=96)
    b = generate_sample(task, 5, seed=3, size=96)
    assert a.image.dtype == np.uint8 and a.image.shape == (96, 96, 3)
    assert a.mask.dtype == bool and a.mask.shape == (96, 96)
    assert a.image.tobytes() == b.image.tobytes() and np.array_equal(a.mask, b.mask) and a.label == b.label
    other_seed = generate_sample(task, 5, seed=4, size=96)
    assert other_seed.image.tobytes() != a.image.tobytes()


def test_dataset_shapes_and_balance(dataset):
    task, (images, labels, masks) = dataset
    k = GENERATORS[task].num_classes
    n = 4 * k
    assert images.shape == (n, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert masks.shape == (n, 64, 64) and masks.dtype == bool
    assert np.bincount(labels, minlength=k).tolist() == [4] * k
    # the dataset is exactly the stacked samples
    s = generate_sample(task, 3, seed=7, size=64)
    assert np.array_equal(images[3], s.image) and labels[3] == s.label and np.array_equal(masks[3], s.mask)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_any_contiguous_range_is_balanced(task):
    k = GENERATORS[task].num_classes
    for start, n in [(0, 50), (3, 37), (11, 100)]:
        counts = np.bincount([label_of(task, i, 1) for i in range(start, start + n)], minlength=k)
        assert counts.min() >= n // k - 1 and counts.max() <= n // k + 2
        assert counts.sum() == n


def test_distinct_images_for_distinct_indices(dataset):
    _, (images, _, _) = dataset
    flat = images.reshape(len(images), -1).astype(np.int16)
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            assert np.abs(flat[i] - flat[j]).mean() > 2


def test_masks_mark_exactly_the_diseased(dataset):
    """Fundus and placenta: empty mask exactly for grade 0. Derm: every image has a lesion mask."""
    task, (_, labels, masks) = dataset
    area = masks.reshape(len(masks), -1).sum(1)
    if task == "derm":
        assert (area > 0).all()
        assert (area / masks[0].size < 0.6).all()  # the lesion does not fill the image
    else:
        assert (area[labels == 0] == 0).all()
        assert (area[labels > 0] >= 2).all()
        assert (area / masks[0].size < 0.2).all()  # lesions are small and local


def test_mask_grows_with_grade():
    """Ordinal tasks: more severe grades have, on average, more lesion area."""
    for task in ("fundus", "placenta"):
        _, labels, masks = generate_dataset(task, 6 * GENERATORS[task].num_classes, seed=2, size=64)
        area = masks.reshape(len(masks), -1).mean(1)
        means = [area[labels == g].mean() for g in range(GENERATORS[task].num_classes)]
        assert means[0] == 0
        assert means[-1] > means[1] > 0


def _bbox(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]) / mask.shape[0]


def _coarse(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((12, 12), Image.Resampling.BOX), float)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_geometry_scales_with_size(task):
    """The same index is the same scene at any size: lesion boxes and coarse image content agree."""
    index = next(i for i in range(20) if label_of(task, i, 0) == GENERATORS[task].num_classes - 1)
    small, large = generate_sample(task, index, 0, 96), generate_sample(task, index, 0, 192)
    assert np.abs(_bbox(small.mask) - _bbox(large.mask)).max() < 0.04
    other = generate_sample(task, index + GENERATORS[task].num_classes, 0, 96)
    c_small, c_large, c_other = (_coarse(s.image) for s in (small, large, other))
    same = np.abs(c_small - c_large).mean()
    assert same < 8 and same < np.abs(c_small - c_other).mean()


@pytest.mark.parametrize("size", [64, 512])
def test_extreme_sizes(size):
    for task in TASK_NAMES:
        s = generate_sample(task, 1, 0, size)
        assert s.image.shape == (size, size, 3) and s.mask.shape == (size, size)
        assert 10 < s.image.mean() < 245  # neither blank nor saturated


def test_unknown_task_and_bad_arguments():
    with pytest.raises(ValueError, match="derm, fundus, placenta"):
        generate_sample("xray", 0, 0)
    with pytest.raises(ValueError, match="known tasks"):
        generate_dataset("xray", 2, 0)
    with pytest.raises(ValueError, match="size"):
        generate_sample("derm", 0, 0, size=8)
    with pytest.raises(ValueError, match=">= 0"):
        generate_sample("derm", -1, 0)


def test_preview_sheet_has_a_row_per_class():
    sheet = contact_sheet("placenta", seed=0, size=32, per_class=2, zoom=1)
    k = GENERATORS["placenta"].num_classes
    assert sheet.size[1] == 4 + k * (32 + 4)
    pixels = np.asarray(sheet)
    assert (pixels == (0, 255, 255)).all(-1).any()  # some mask outline is drawn
