"""Dual-granularity conditional guidance (DCG): the global and local priors of DiffMIC.

The model's input is the image at ``input_size = image_size * local_scale`` pixels.

Global: the input, average-pooled to ``image_size``, goes through a timm CNN (dilated to
``output_stride`` 16 by default, so the class-activation map (CAM) is 8 x 8 at 128 px); a 1x1
convolution turns its feature map into the CAM, and pooling the top-t% cells of each class channel gives
the global logits.

Local: K ROI boxes are chosen on a class-discriminative map of the CAM, inside the imaged field, with
non-maximum suppression (``diffmic.rois``). The patches are cut from the full-resolution input (as in
GMIC, whose DCG this is: the local network sees detail the global one cannot), embedded by a second
timm CNN, and weighed by gated-attention multiple-instance pooling (Ilse et al., 2018) into one vector
that a linear layer maps to the local logits.

Fusion: in logit space, fused = w_g * global + w_l * local (the authors' code fuses logits; the
weights are 1/2 each, or fitted on validation data).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import rois
from .backbones import create_backbone
from .config import DiffMICConfig
from .tasks import preprocessing


@dataclass
class Guidance:
    """Everything the DCG computes for a batch of B images with C classes and K crops."""

    global_logits: torch.Tensor  # (B, C)
    local_logits: torch.Tensor  # (B, C)
    fused_logits: torch.Tensor  # (B, C)
    cam: torch.Tensor  # (B, C, S, S) class-activation logits
    roi_map: torch.Tensor  # (B, S, S) in [0, 1], the map the ROIs were chosen from
    boxes: torch.Tensor  # (B, K, 4) int64 (x0, y0, x1, y1) in global-view pixels, most salient first
    attention: torch.Tensor  # (B, K) gated-attention weights, sum to 1
    global_features: torch.Tensor  # (B, Dg) the global network's pooled features
    local_features: torch.Tensor  # (B, Dl) the attention-pooled ROI embeddings

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
        """The diffusion's prior mean: softmax of the fused logits."""
        return self.fused_logits.softmax(-1)

    def prior(self, which: str = "fused") -> torch.Tensor:
        """The prior mean of a chain: the ``fused``, ``global`` or ``local`` prior, or zeros (``none``)."""
        options = {
            "fused": lambda: self.fused_prior,
            "global": lambda: self.global_prior,
            "local": lambda: self.local_prior,
            "none": lambda: torch.zeros_like(self.global_logits),
        }
        if which not in options:
            raise ValueError(f"unknown prior {which!r}; use one of {', '.join(options)}")
        return options[which]()

    def class_saliency(self, classes: torch.Tensor | None = None, contrast: str = "classes") -> torch.Tensor:
        """(B, S, S) evidence map in [0, 1] of one class per image (default: the fused prior's top class);
        ``contrast`` as in ``rois.class_evidence``."""
        if classes is None:
            classes = self.fused_logits.argmax(-1)
        maps = rois.class_evidence(self.cam, contrast)[torch.arange(self.cam.shape[0]), classes]
        return rois.minmax(maps.detach())


def fuse_logits(global_logits: torch.Tensor, local_logits: torch.Tensor, weights: tuple[float, float]):
    """Logit-space fusion of the two granularities: w_g * global + w_l * local."""
    return weights[0] * global_logits + weights[1] * local_logits


def top_pool(cam: torch.Tensor, top_percent: float) -> torch.Tensor:
    """Logits (B, C) of a CAM (B, C, H, W): each class channel's mean over its top-t% cells."""
    flat = cam.flatten(2)
    n = max(1, round(top_percent * flat.shape[-1]))
    return flat.topk(n, dim=-1).values.mean(-1)


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


def check_local_from_global(config: DiffMICConfig) -> None:
    """Raise unless the local network can start from the global one's weights (one backbone for both)."""
    local, glob = config.local_backbone, config.global_backbone
    if local != glob:
        raise ValueError(
            f"the local network can start from the global one's weights only with one backbone for both "
            f"branches, got {local} (local) and {glob} (global)"
        )


class DualGuidance(nn.Module):
    """The DCG network: global CAM prior + local ROI prior."""

    def __init__(self, config: DiffMICConfig):
        super().__init__()
        self.config = config
        c = config.num_classes
        self.global_net, self.global_dim = create_backbone(
            config.global_backbone, pooled=False, output_stride=config.output_stride
        )
        self.cam_head = nn.Conv2d(self.global_dim, c, kernel_size=1)
        local_px = config.crop_size * config.local_scale
        self.local_net, self.local_dim = create_backbone(config.local_backbone, probe_size=local_px)
        self.attention_pool = GatedAttentionPool(self.local_dim, config.attention_dim)
        self.local_head = nn.Linear(self.local_dim, c)

    def local_from_global(self) -> None:
        """Start the local network from the global network's weights (both the same backbone): the trained
        global network stands in for the ImageNet weights both branches start from in the paper."""
        check_local_from_global(self.config)
        self.local_net.load_state_dict(self.global_net.state_dict())

    def global_view(self, x: torch.Tensor) -> torch.Tensor:
        """The global network's input: the model input average-pooled by local_scale."""
        s = self.config.local_scale
        return F.avg_pool2d(x, s) if s > 1 else x

    def global_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CAM (B, C, S, S), global logits (B, C) and pooled features (B, Dg) of a batch of inputs."""
        return self.global_branch_of_view(self.global_view(x))

    def global_branch_of_view(self, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``global_branch`` of inputs already reduced to the global view (image_size px)."""
        fmap = self.global_net.forward_features(view)
        if fmap.dim() != 4:
            raise ValueError(
                f"global backbone {self.config.global_backbone!r} must give a (B, C, H, W) "
                "feature map (a CNN); use a convolutional timm model"
            )
        cam = self.cam_head(fmap)
        return cam, top_pool(cam, self.config.top_percent), fmap.mean((2, 3))

    def choose_rois(
        self, x: torch.Tensor, cam: torch.Tensor, global_logits: torch.Tensor, mode: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ROI boxes (B, K, 4) in global-view pixels and the map they were chosen from (B, S, S).

        ``mode`` overrides the config's ``roi_map`` (to compare the maps on validation data)."""
        cfg = self.config
        heat = rois.roi_map(cam.detach(), global_logits.detach(), mode or cfg.roi_map)
        cells = heat.shape[-1]
        boxes = rois.candidate_boxes(cells, cfg.image_size, cfg.crop_size).to(x.device)
        mean, std = x.new_tensor(cfg.mean).view(3, 1, 1), x.new_tensor(cfg.std).view(3, 1, 1)
        pixels = self.global_view(x) * std + mean
        field = rois.box_fractions(rois.field_mask(pixels, preprocessing(cfg.task).background_level), boxes)
        idx = rois.select_rois(
            heat.flatten(1), boxes, cfg.num_crops, cfg.roi_nms_iou, field >= cfg.roi_min_field, field
        )
        return boxes[idx], heat

    def local_branch(self, x: torch.Tensor, boxes: torch.Tensor):
        """Local logits (B, C), pooled features (B, Dl) and attention (B, K) of the ROI patches."""
        s = self.config.local_scale
        crops = rois.crop_boxes(x, boxes * s, self.config.crop_size * s)
        b, k = crops.shape[:2]
        h = self.local_net(crops.flatten(0, 1).contiguous(memory_format=torch.channels_last)).view(b, k, -1)
        pooled, attention = self.attention_pool(h)
        return self.local_head(pooled), pooled, attention

    def forward(self, x: torch.Tensor) -> Guidance:
        """Run both granularities on a batch of preprocessed inputs (B, 3, input_size, input_size)."""
        cam, global_logits, global_features = self.global_branch(x)
        boxes, heat = self.choose_rois(x, cam, global_logits)
        local_logits, local_features, attention = self.local_branch(x, boxes)
        fused = fuse_logits(global_logits, local_logits, self.config.fusion_weights)
        return Guidance(
            global_logits, local_logits, fused, cam, heat, boxes, attention, global_features, local_features
        )
