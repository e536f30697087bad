"""Choosing the ROI patches of the DCG's local branch: where the class evidence is, on the imaged field.

1. ``roi_map``: a class-discriminative map from the CAM — the evidence for the predicted class (its CAM
   channel minus the mean over classes: what moves its softmax), the prior-weighted evidence, or the
   paper's sum of every class's min–max-normalised channel (``all-classes``, kept for fidelity).
2. ``field_mask``: the imaged field — everything but near-constant dark background (the black surround
   of a fundus photo, the outside of an ultrasound sector; the level is the task's,
   ``tasks.Preprocessing.background_level``). A candidate box whose field fraction is
   below ``min_field`` is never chosen while enough others remain.
3. ``select_rois``: greedy non-maximum suppression over boxes centred on the CAM cells, so the K crops
   spread over distinct spots, most salient first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import ROI_MAPS, SALIENCY_CONTRASTS
from .tasks import DEFAULT_PREPROCESSING

# luminance in [0, 1] at or below which a (locally averaged) pixel counts as background, unless the task says
# otherwise (``tasks.Preprocessing.background_level``)
DARK_LEVEL = DEFAULT_PREPROCESSING.background_level
FIELD_WINDOW = 5  # pixels: the background test looks at the local mean, so noise and thin marks do not count


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Rescale each map of a (B, ...) batch to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return ((flat - lo) / (hi - lo).clamp_min(1e-6)).view_as(maps)


def class_evidence(cam: torch.Tensor, contrast: str = "classes") -> torch.Tensor:
    """(B, C, S, S) CAM logits → each class's evidence: its channel minus the mean over classes
    (``classes``), or minus the first class's channel (``first-class``: what sets class c apart from
    class 0, the healthy class of the graded tasks; class 0's own evidence stays against the mean)."""
    against_mean = cam - cam.mean(1, keepdim=True)
    if contrast == "classes":
        return against_mean
    if contrast == "first-class":
        return torch.cat([against_mean[:, :1], cam[:, 1:] - cam[:, :1]], 1)
    raise ValueError(f"unknown contrast {contrast!r}; use one of {', '.join(SALIENCY_CONTRASTS)}")


def roi_map(cam: torch.Tensor, logits: torch.Tensor, mode: str = "predicted") -> torch.Tensor:
    """The (B, S, S) map in [0, 1] that ROIs are chosen from (see the module docstring for the modes)."""
    if mode == "predicted":
        top = logits.argmax(-1)
        maps = class_evidence(cam)[torch.arange(cam.shape[0]), top]
    elif mode == "prior-weighted":
        maps = (logits.softmax(-1)[:, :, None, None] * class_evidence(cam)).sum(1)
    elif mode == "all-classes":
        maps = minmax(cam.flatten(0, 1)).view_as(cam).sum(1)
    else:
        raise ValueError(f"unknown roi map {mode!r}; use one of {', '.join(ROI_MAPS)}")
    return minmax(maps)


def field_mask(pixels: torch.Tensor, dark_level: float | None = DARK_LEVEL) -> torch.Tensor:
    """(B, H, W) bool: True on the imaged field of (B, 3, H, W) images in [0, 1]; False on dark background
    (locally averaged luminance at or below ``dark_level``; None: no background, all True)."""
    if dark_level is None:
        return torch.ones_like(pixels[:, 0], dtype=torch.bool)
    luminance = (0.299 * pixels[:, 0] + 0.587 * pixels[:, 1] + 0.114 * pixels[:, 2])[:, None]
    local = F.avg_pool2d(
        luminance, FIELD_WINDOW, stride=1, padding=FIELD_WINDOW // 2, count_include_pad=False
    )
    return local[:, 0] > dark_level


def candidate_boxes(cells: int, image_size: int, crop_size: int) -> torch.Tensor:
    """(cells², 4) int64 boxes (x0, y0, x1, y1), crop_size wide, centred on each CAM cell, in the image."""
    centres = (torch.arange(cells, dtype=torch.float32) + 0.5) * image_size / cells
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    x0 = (cx.flatten() - crop_size / 2).round().clamp(0, image_size - crop_size).long()
    y0 = (cy.flatten() - crop_size / 2).round().clamp(0, image_size - crop_size).long()
    return torch.stack([x0, y0, x0 + crop_size, y0 + crop_size], 1)


def box_fractions(mask: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(B, N) fraction of True pixels of (B, H, W) masks inside each of N boxes (summed-area table)."""
    sat = F.pad(mask.float().cumsum(1).cumsum(2), (1, 0, 1, 0))
    x0, y0, x1, y1 = (boxes[:, i].to(mask.device) for i in range(4))
    inside = sat[:, y1, x1] - sat[:, y0, x1] - sat[:, y1, x0] + sat[:, y0, x0]
    return inside / ((x1 - x0) * (y1 - y0)).clamp_min(1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) intersection over union of two sets of (x0, y0, x1, y1) boxes."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1).float()
    area_a = (a[:, 2:] - a[:, :2]).prod(-1).float()
    area_b = (b[:, 2:] - b[:, :2]).prod(-1).float()
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1e-6)


def select_rois(
    score: torch.Tensor,
    boxes: torch.Tensor,
    k: int,
    nms_iou: float,
    eligible: torch.Tensor | None = None,
    fallback: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy NMS: indices (B, k) of candidate ``boxes`` (N, 4) by ``score`` (B, N), most salient first.

    A candidate overlapping an already chosen box by IoU > ``nms_iou``, or not ``eligible`` (B, N), is
    skipped while others remain; when fewer than k remain, the best skipped ones fill the rest, so k
    indices are always returned (eligible-but-overlapping before ineligible; ineligible ones in the order
    of ``fallback`` (B, N) in [0, 1], highest first — their field fraction —, else by score).
    """
    b, n = score.shape
    if eligible is None:
        eligible = torch.ones_like(score, dtype=torch.bool)
    overlap = box_iou(boxes, boxes).to(score.device) > nms_iou  # (N, N)
    rows = torch.arange(b, device=score.device)
    span = score.max() - score.min() + 1.0
    # rank: eligible and free first, then eligible but overlapping, then ineligible (by fallback, then
    # overlap, then score); score breaks ties
    penalty = (~eligible).float() * 2 * span
    if fallback is not None:
        penalty = penalty + (~eligible).float() * (1 - fallback) * 1e4 * span
    taken = torch.zeros(b, n, dtype=torch.bool, device=score.device)
    blocked = torch.zeros_like(taken)
    chosen = []
    for _ in range(k):
        rank = score - penalty - blocked.float() * span
        idx = rank.masked_fill(taken, float("-inf")).argmax(1)
        chosen.append(idx)
        taken[rows, idx] = True
        blocked |= overlap[idx]
    return torch.stack(chosen, 1)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Cut (B, K) square patches out of (B, 3, H, W) images: returns (B, K, 3, crop, crop)."""
    b, c, h, w = images.shape
    k = boxes.shape[1]
    offs = torch.arange(crop_size, device=images.device)
    ys = boxes[..., 1, None].to(images.device) + offs  # (B, K, crop)
    xs = boxes[..., 0, None].to(images.device) + offs
    flat = (ys[..., :, None] * w + xs[..., None, :]).view(b, 1, k * crop_size * crop_size)
    patches = images.flatten(2).gather(2, flat.expand(b, c, -1))
    return patches.view(b, c, k, crop_size, crop_size).transpose(1, 2)
