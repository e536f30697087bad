"""Dual-granularity conditional guidance (DCG): the global and local priors of DiffMIC.

Global: a timm CNN gives a feature map; a 1x1 convolution turns it into a class-activation map
(CAM). Pooling the top-t% cells of each class channel gives the global logits.

Local: the CAM (each class channel min-max normalised, then summed) is a saliency map. The K most
salient cells are taken greedily, each suppressing its neighbourhood, and a crop_size x crop_size
patch of the input image centred on each is cut out. A second timm CNN embeds the patches, and
gated-attention multiple-instance pooling (Ilse et al., 2018) weighs them into one vector that a
linear layer maps to the local logits. The fused prior is the mean of the two class distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import create_backbone
from .config import DiffMICConfig


@dataclass
class Guidance:
    """Everything the DCG computes for a batch of B images with C classes and K crops."""

    global_logits: torch.Tensor  # (B, C)
    local_logits: torch.Tensor  # (B, C)
    cam: torch.Tensor  # (B, C, S, S) class-activation logits on the CAM grid
    saliency: torch.Tensor  # (B, S, S) in [0, 1], the map ROIs are chosen from
    boxes: torch.Tensor  # (B, K, 4) int64 (x0, y0, x1, y1) in input pixels, most salient first
    attention: torch.Tensor  # (B, K) gated-attention weights, sum to 1

    @property
    def global_prior(self) -> torch.Tensor:
        """Class distribution of the global branch."""
        return self.global_logits.softmax(-1)

    @property
    def local_prior(self) -> torch.Tensor:
        """Class distribution of the local branch."""
        return self.local_logits.softmax(-1)

    @property
    def fused_prior(self) -> torch.Tensor:
        """The diffusion's prior mean: the average of the global and local distributions."""
        return 0.5 * (self.global_prior + self.local_prior)

    def class_saliency(self, classes: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, S) CAM channel of one class per image (default: the fused prior's top class), in [0, 1].

        This class-discriminative map is what the app shows as the global saliency; the ROIs are
        chosen from ``saliency`` (all classes' channels summed), as in the paper.
        """
        if classes is None:
            classes = self.fused_prior.argmax(-1)
        maps = self.cam[torch.arange(self.cam.shape[0]), classes].detach()
        flat = maps.flatten(1)
        lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        return ((flat - lo) / (hi - lo).clamp_min(1e-6)).view_as(maps)


def normalised_saliency(cam: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each class channel of a (B, C, S, S) CAM, sum over classes, rescale to [0, 1]."""
    flat = cam.flatten(2)
    lo, hi = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
    summed = ((flat - lo) / (hi - lo).clamp_min(1e-6)).sum(1)
    lo, hi = summed.amin(-1, keepdim=True), summed.amax(-1, keepdim=True)
    return ((summed - lo) / (hi - lo).clamp_min(1e-6)).view(cam.shape[0], *cam.shape[2:])


def select_rois(saliency: torch.Tensor, k: int, crop_size: int, image_size: int) -> torch.Tensor:
    """Greedy top-k boxes on a (B, S, S) saliency map, in input-pixel coordinates, most salient first.

    Each chosen cell's box (crop_size wide, centred on the cell, clamped inside the image) masks out
    the cells whose centres it covers, so the crops spread over distinct regions.
    """
    b, s, _ = saliency.shape
    cell = image_size / s
    centres = (torch.arange(s, dtype=torch.float32) + 0.5) * cell  # cell centres in pixels
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    cy, cx = cy.flatten(), cx.flatten()
    score = saliency.flatten(1).float().clone()
    boxes = []
    for _ in range(k):
        idx = score.argmax(1)
        x0 = (cx[idx] - crop_size / 2).round().clamp(0, image_size - crop_size).long()
        y0 = (cy[idx] - crop_size / 2).round().clamp(0, image_size - crop_size).long()
        boxes.append(torch.stack([x0, y0, x0 + crop_size, y0 + crop_size], 1))
        covered = (
            (cx[None] >= x0[:, None])
            & (cx[None] < x0[:, None] + crop_size)
            & (cy[None] >= y0[:, None])
            & (cy[None] < y0[:, None] + crop_size)
        )
        covered[torch.arange(b), idx] = True
        score = score.masked_fill(covered, float("-inf"))
        # when every cell is covered, fall back to the original order so k boxes are always returned
        exhausted = torch.isinf(score).all(1)
        if exhausted.any():
            score[exhausted] = saliency.flatten(1).float()[exhausted] - 2.0 * covered[exhausted].float()
    return torch.stack(boxes, 1)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Cut (B, K) square patches out of (B, 3, H, W) images: returns (B, K, 3, crop, crop)."""
    b, c, h, w = images.shape
    k = boxes.shape[1]
    offs = torch.arange(crop_size, device=images.device)
    ys = (boxes[..., 1, None] + offs).to(images.device)  # (B, K, crop)
    xs = (boxes[..., 0, None] + offs).to(images.device)
    flat = (ys[..., :, None] * w + xs[..., None, :]).view(b, 1, k * crop_size * crop_size)
    patches = images.flatten(2).gather(2, flat.expand(b, c, -1))
    return patches.view(b, c, k, crop_size, crop_size).transpose(1, 2)


class GatedAttentionPool(nn.Module):
    """Gated attention MIL pooling: a_k = softmax_k( w^T (tanh(V h_k) * sigmoid(U h_k)) )."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.V = nn.Linear(dim, hidden)
        self.U = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) instance embeddings → pooled (B, D) and attention weights (B, K)."""
        a = self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))).squeeze(-1).softmax(-1)
        return (a.unsqueeze(-1) * h).sum(1), a


class DualGuidance(nn.Module):
    """The DCG network: global CAM prior + local ROI prior."""

    def __init__(self, config: DiffMICConfig):
        super().__init__()
        self.config = config
        c = config.num_classes
        self.global_net, global_dim = create_backbone(config.global_backbone, pooled=False)
        self.cam_head = nn.Conv2d(global_dim, c, kernel_size=1)
        self.local_net, local_dim = create_backbone(config.local_backbone, probe_size=config.crop_size)
        self.attention_pool = GatedAttentionPool(local_dim, config.attention_dim)
        self.local_head = nn.Linear(local_dim, c)

    def class_activation_map(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) CAM logits, resized to the configured cam_size."""
        fmap = self.global_net.forward_features(images)
        if fmap.dim() != 4:
            raise ValueError(
                f"global backbone {self.config.global_backbone!r} must give a (B, C, H, W) "
                "feature map (a CNN); use a convolutional timm model"
            )
        cam = self.cam_head(fmap)
        s = self.config.cam_size
        if cam.shape[-2:] != (s, s):
            cam = F.interpolate(cam, size=(s, s), mode="bilinear", align_corners=False)
        return cam

    def global_logits(self, cam: torch.Tensor) -> torch.Tensor:
        """Top-t% pooling of each class channel of the CAM."""
        flat = cam.flatten(2)
        n = max(1, round(self.config.top_percent * flat.shape[-1]))
        return flat.topk(n, dim=-1).values.mean(-1)

    def forward(self, images: torch.Tensor) -> Guidance:
        """Run both granularities on a batch of preprocessed images."""
        cfg = self.config
        cam = self.class_activation_map(images)
        saliency = normalised_saliency(cam.detach())
        boxes = select_rois(saliency, cfg.num_crops, cfg.crop_size, images.shape[-1])
        crops = crop_boxes(images, boxes, cfg.crop_size)
        b, k = crops.shape[:2]
        h = self.local_net(crops.flatten(0, 1)).view(b, k, -1)
        pooled, attention = self.attention_pool(h)
        return Guidance(self.global_logits(cam), self.local_head(pooled), cam, saliency, boxes, attention)
