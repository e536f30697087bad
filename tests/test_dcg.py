"""The DCG: ROI choice on the imaged field with NMS, logit fusion, the guidance outputs."""

import numpy as np
import pytest
import torch

from diffmic import rois
from diffmic.dcg import fuse_logits
from tests.helpers import tiny_model


def test_candidate_boxes_are_centred_on_cells_inside_the_image():
    boxes = rois.candidate_boxes(8, 128, 32)
    assert boxes.shape == (64, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 128).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) == 32).all()
    assert boxes[8 * 5 + 2].tolist() == [24, 72, 56, 104]  # cell (row 5, col 2): centre (40, 88)


def test_selection_follows_the_score_and_nms_keeps_crops_apart():
    gen = torch.Generator().manual_seed(0)
    score = torch.rand(4, 64, generator=gen)
    boxes = rois.candidate_boxes(8, 128, 32)
    idx = rois.select_rois(score, boxes, k=5, nms_iou=0.1)
    assert idx.shape == (4, 5)
    assert torch.equal(idx[:, 0], score.argmax(1))  # the most salient cell comes first
    for b in range(4):
        chosen = boxes[idx[b]]
        iou = rois.box_iou(chosen, chosen)
        assert (iou - torch.eye(5) <= 0.1 + 1e-6).all()  # no two crops overlap by more than the threshold
        taken = score[b, idx[b]]
        assert (taken[:-1] >= taken[1:]).all()  # greedy: in decreasing score


def test_nms_would_otherwise_pile_crops_on_one_spot():
    score = torch.zeros(1, 64)
    score[0, [27, 28, 35, 36]] = torch.tensor([1.0, 0.99, 0.98, 0.97])  # four neighbouring cells
    score[0, 7] = 0.5  # a distant, weaker spot
    boxes = rois.candidate_boxes(8, 128, 32)
    piled = rois.select_rois(score, boxes, k=2, nms_iou=1.0)[0].tolist()
    spread = rois.select_rois(score, boxes, k=2, nms_iou=0.1)[0].tolist()
    assert piled == [27, 28] and spread == [27, 7]


def test_rois_ignore_a_black_surround_and_find_the_only_bright_spot():
    # a fundus-like picture: black everywhere, a grey disc (the imaged field), one bright spot in the field;
    # the score map is highest in the black corners, as a CAM of the background would be
    size = 128
    yy, xx = np.mgrid[:size, :size]
    pixels = np.zeros((size, size, 3), np.float32)
    disc = (yy - 64) ** 2 + (xx - 64) ** 2 < 50**2
    pixels[disc] = 0.45
    pixels[(yy - 80) ** 2 + (xx - 52) ** 2 < 4**2] = 1.0
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    field = rois.field_mask(image)
    assert not field[0, 2, 2] and field[0, 64, 64]
    boxes = rois.candidate_boxes(8, size, 32)
    centre = (boxes[:, :2] + boxes[:, 2:]).float() / 2
    corner = ((centre - 64) ** 2).sum(1).sqrt() / 90  # grows towards the corners
    spot = torch.exp(-((centre - torch.tensor([52.0, 80.0])) ** 2).sum(1) / 200)
    score = (2 * corner + 0.8 * spot)[None]
    inside = rois.box_fractions(field, boxes) >= 0.5
    idx = rois.select_rois(score, boxes, k=3, nms_iou=0.1, eligible=inside)[0]
    assert rois.select_rois(score, boxes, k=1, nms_iou=0.1)[0, 0] != idx[0]  # without the field: a corner
    x0, y0, x1, y1 = boxes[idx[0]].tolist()
    assert x0 <= 52 < x1 and y0 <= 80 < y1  # the top ROI holds the bright spot
    dark = ~field[0]
    for k in idx.tolist():
        x0, y0, x1, y1 = boxes[k].tolist()
        assert dark[y0:y1, x0:x1].float().mean() <= 0.5  # no crop is mostly background


def test_roi_maps_are_normalised_and_class_discriminative():
    cam = torch.zeros(1, 3, 4, 4)
    cam[0, 2, 1, 3] = 5.0  # evidence for class 2 at (1, 3)
    cam[0, :, 0, 0] = 9.0  # all classes equally high at (0, 0): no evidence for any class
    logits = torch.tensor([[0.0, 0.0, 1.0]])
    for mode in ("predicted", "prior-weighted", "all-classes"):
        m = rois.roi_map(cam, logits, mode)
        assert m.shape == (1, 4, 4) and float(m.min()) == 0 and float(m.max()) == pytest.approx(1)
    assert int(rois.roi_map(cam, logits, "predicted").argmax()) == 1 * 4 + 3
    assert int(rois.roi_map(cam, logits, "all-classes").argmax()) == 0  # the paper's map is fooled
    with pytest.raises(ValueError, match="unknown roi map"):
        rois.roi_map(cam, logits, "summed")


def test_crop_boxes_cuts_the_right_pixels():
    images = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    boxes = torch.tensor([[[2, 3, 6, 7]], [[10, 0, 14, 4]]])
    crops = rois.crop_boxes(images, boxes, 4)
    assert crops.shape == (2, 1, 3, 4, 4)
    assert torch.equal(crops[0, 0], images[0, :, 3:7, 2:6])
    assert torch.equal(crops[1, 0], images[1, :, 0:4, 10:14])


def test_logit_fusion_equals_the_hand_computed_value():
    g = torch.tensor([[2.0, 0.0, -1.0]])
    loc = torch.tensor([[0.0, 1.0, 1.0]])
    fused = fuse_logits(g, loc, (0.5, 0.5))
    assert fused.tolist() == [[1.0, 0.5, 0.0]]
    e = np.exp([1.0, 0.5, 0.0])
    assert np.allclose(fused.softmax(-1).numpy(), e / e.sum())
    assert fuse_logits(g, loc, (1.2, 0.3))[0].tolist() == pytest.approx([2.4, 0.3, -0.9])


def test_guidance_outputs():
    model = tiny_model(4)
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        g = model.dcg(x)
    assert g.global_logits.shape == g.local_logits.shape == g.fused_logits.shape == (3, 4)
    assert g.cam.shape == (3, 4, 4, 4) and g.boxes.shape == (3, 3, 4) and g.roi_map.shape == (3, 4, 4)
    assert torch.allclose(g.attention.sum(-1), torch.ones(3))
    assert torch.allclose(g.fused_logits, (g.global_logits + g.local_logits) / 2)
    assert torch.allclose(g.fused_prior, g.fused_logits.softmax(-1))
    assert g.global_features.shape[0] == g.local_features.shape[0] == 3
    # the crops are cut from the full-resolution input: the boxes are in global-view (64 px) pixels
    assert (g.boxes[..., 2:] <= 64).all() and ((g.boxes[..., 2:] - g.boxes[..., :2]) == 16).all()


def test_class_saliency_is_the_evidence_of_the_chosen_class():
    model = tiny_model(4)
    with torch.no_grad():
        g = model.dcg(torch.randn(2, 3, 128, 128))
    s = g.class_saliency(torch.tensor([1, 3]))
    assert s.shape == (2, 4, 4) and float(s.min()) >= 0 and float(s.max()) <= 1
    for b, k in enumerate([1, 3]):
        evidence = g.cam[b, k] - g.cam[b].mean(0)
        assert int(s[b].argmax()) == int(evidence.argmax())
    assert torch.equal(g.class_saliency(), g.class_saliency(g.fused_prior.argmax(-1)))


def test_first_class_contrast_sets_each_class_against_class_zero():
    cam = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    ev = rois.class_evidence(cam, "first-class")
    for k in (1, 2, 3):  # what sets class k apart from class 0, by hand
        torch.testing.assert_close(ev[:, k], cam[:, k] - cam[:, 0])
    torch.testing.assert_close(ev[:, 0], cam[:, 0] - cam.mean(1))  # class 0 itself: against the mean
    torch.testing.assert_close(rois.class_evidence(cam), cam - cam.mean(1, keepdim=True))
    with pytest.raises(ValueError, match="unknown contrast"):
        rois.class_evidence(cam, "other")
    model = tiny_model(4)
    with torch.no_grad():
        g = model.dcg(torch.randn(1, 3, 128, 128))
    s = g.class_saliency(torch.tensor([2]), "first-class")[0]
    assert int(s.argmax()) == int((g.cam[0, 2] - g.cam[0, 0]).argmax())


def test_when_too_few_boxes_lie_wholly_on_the_field_the_rest_are_the_most_on_it():
    # a speckled field leaves only a few boxes wholly inside it; the others must then be the boxes most
    # inside the field (not the highest scores in the black surround, as a fallback by score would pick)
    boxes = rois.candidate_boxes(4, 128, 32)  # 16 disjoint boxes
    field = torch.tensor([[1.0, 0.99, 0.98, 0.2] + [0.0] * 12])
    score = torch.linspace(0, 1, 16)[None]  # the dark boxes score highest
    idx = rois.select_rois(score, boxes, k=3, nms_iou=0.1, eligible=field >= 1.0, fallback=field)
    assert idx[0].tolist() == [0, 1, 2]
    by_score = rois.select_rois(score, boxes, k=3, nms_iou=0.1, eligible=field >= 1.0)
    assert by_score[0].tolist() == [0, 15, 14]
