"""Choices made on validation images: the ROI map, the contrast of the DCG evidence map and the Grad-CAM
variant the app shows.

Both are scored against the lesion masks of the generated data (a pointing game), and both helpers read
only the dataset they are given — the trainer gives them the validation split; test images only report
(``benchmarks/faithfulness.py``). A dataset without masks (real data) leaves the configured choice.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_dilation

from .config import ROI_MAPS, SALIENCY_CONTRASTS
from .data.datasets import ArrayDataset
from .explain import CAM_METHODS, grad_cam
from .model import DiffMIC
from .transforms import normalise

CAM_STAGES = (-1, -2)


def lesion_images(dataset: ArrayDataset, limit: int) -> np.ndarray:
    """Indices of up to ``limit`` images whose lesion mask is not empty."""
    if getattr(dataset, "masks", None) is None:
        return np.zeros(0, dtype=np.int64)
    has = np.flatnonzero(dataset.masks.reshape(len(dataset), -1).any(1))
    return has[:limit]


def box_hits(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(K,) whether each (x0, y0, x1, y1) box holds a lesion pixel of ``mask``."""
    return np.array([bool(mask[y0:y1, x0:x1].any()) for x0, y0, x1, y1 in np.asarray(boxes).tolist()])


def points_at_lesion(heat: np.ndarray | torch.Tensor, mask: np.ndarray, tolerance: int) -> bool:
    """Pointing game: the maximum of ``heat`` (bilinearly upsampled to the mask) near a lesion pixel."""
    h = torch.as_tensor(np.asarray(heat), dtype=torch.float32)[None, None]
    up = F.interpolate(h, size=mask.shape, mode="bilinear", align_corners=False)[0, 0]
    r, c = divmod(int(up.argmax()), mask.shape[1])
    near = binary_dilation(mask, structure=np.ones((2 * tolerance + 1,) * 2, bool))
    return bool(near[r, c])


@torch.no_grad()
def choose_roi_map(
    model: DiffMIC, val: ArrayDataset, limit: int = 200
) -> tuple[str | None, dict[str, float]]:
    """The ROI map whose K crops hold a lesion most often on validation images (None without masks).

    The score is the mean over crops (what the local branch sees), not whether any crop hits: with K
    crops of a quarter of the side, almost any placement touches a lesion somewhere."""
    idx = lesion_images(val, limit)
    if not len(idx):
        return None, {}
    model.eval()
    scale = model.config.local_scale
    scores = {}
    for mode in ROI_MAPS:
        hits = []
        for start in range(0, len(idx), 32):
            batch = idx[start : start + 32]
            x = normalise(val.images[batch], model.config).to(model.device)
            cam, logits, _ = model.dcg.global_branch(x)
            boxes, _ = model.dcg.choose_rois(x, cam, logits, mode=mode)
            for i, b in zip(batch, boxes.cpu().numpy() * scale, strict=True):
                hits.append(box_hits(b, val.masks[i]).mean())
        scores[mode] = float(np.mean(hits))
    return max(ROI_MAPS, key=lambda m: scores[m]), scores  # ties: the first in ROI_MAPS


@torch.no_grad()
def choose_saliency_contrast(
    model: DiffMIC, val: ArrayDataset, limit: int = 300
) -> tuple[str | None, dict[str, float]]:
    """The contrast of the DCG evidence map (``rois.class_evidence``) whose maximum points at a lesion most
    often on validation images, for the fused prior's answer (None without masks; ties: ``classes``).

    It changes only the map shown and scored, not the ROI choice (the local branch was trained on those
    crops)."""
    idx = lesion_images(val, limit)
    if not len(idx):
        return None, {}
    model.eval()
    tolerance = max(1, model.config.input_size // 16)
    hits: dict[str, list[bool]] = {c: [] for c in SALIENCY_CONTRASTS}
    for start in range(0, len(idx), 32):
        batch = idx[start : start + 32]
        guidance = model.dcg(normalise(val.images[batch], model.config).to(model.device))
        for contrast in SALIENCY_CONTRASTS:
            maps = guidance.class_saliency(contrast=contrast).cpu().numpy()
            pairs = zip(maps, batch, strict=True)
            hits[contrast] += [points_at_lesion(m, val.masks[i], tolerance) for m, i in pairs]
    scores = {c: float(np.mean(h)) for c, h in hits.items()}
    return max(SALIENCY_CONTRASTS, key=lambda c: scores[c]), scores


def choose_explanation(
    model: DiffMIC, val: ArrayDataset, limit: int = 100
) -> tuple[tuple[str, int] | None, dict[str, float]]:
    """The (Grad-CAM method, stage) of the global network that points at lesions most often (validation)."""
    idx = lesion_images(val, limit)
    if not len(idx):
        return None, {}
    tolerance = max(1, model.config.input_size // 16)
    preds = {}
    with torch.no_grad():
        for i in idx:
            x = normalise(val.images[i : i + 1], model.config).to(model.device)
            preds[int(i)] = int(model.dcg(x).fused_logits.argmax())
    scores = {}
    for method in CAM_METHODS:
        for stage in CAM_STAGES:
            hits = [
                points_at_lesion(
                    grad_cam(
                        model,
                        normalise(val.images[i : i + 1], model.config).to(model.device),
                        preds[int(i)],
                        method=method,
                        stage=stage,
                    ),
                    val.masks[i],
                    tolerance,
                )
                for i in idx
            ]
            scores[f"{method}:{stage}"] = float(np.mean(hits))
    best = max(scores, key=scores.get)
    method, stage = best.split(":")
    return (method, int(stage)), scores


def choose_explanations(model: DiffMIC, val: ArrayDataset) -> tuple[dict, dict[str, dict[str, float]]]:
    """Every explanation choice made on validation images: the evidence map's contrast and the Grad-CAM
    variant. Returns the config values chosen (none without lesion masks) and each choice's scores."""
    values: dict = {}
    scores: dict[str, dict[str, float]] = {}
    contrast, scores["saliency contrast"] = choose_saliency_contrast(model, val)
    if contrast is not None:
        values["saliency_contrast"] = contrast
    variant, scores["grad-cam"] = choose_explanation(model, val)
    if variant is not None:
        values["cam_method"], values["cam_stage"] = variant
    return values, {k: v for k, v in scores.items() if v}
