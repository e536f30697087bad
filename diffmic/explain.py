"""Where the model looked: the DCG saliency map, the ROI patches, and Grad-CAM.

Grad-CAM (via pytorch-grad-cam) can explain two networks:
- ``global``: the DCG's global classifier (its class logits), and
- ``denoiser``: the denoiser's image encoder, through the clean-label estimate y0 that the
  denoiser makes from the prior mean at a middle timestep; this shows which pixels move the
  diffusion's answer towards a class.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw
from torch import nn

from .model import DiffMIC


def colourise(heat: np.ndarray, size: int, cmap: str = "jet") -> np.ndarray:
    """Upsample a 2-D map in [0, 1] to size x size (bilinear) and colour it: uint8 (size, size, 3)."""
    h = np.asarray(heat, dtype=np.float32)
    h = (h - h.min()) / max(float(h.max() - h.min()), 1e-6)
    up = np.asarray(
        Image.fromarray((h * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    )
    return (colormaps[cmap](up / 255.0)[..., :3] * 255).astype(np.uint8)


def overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a heat map over an RGB uint8 image."""
    colour = colourise(heat, pixels.shape[0])
    return (pixels.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(np.uint8)


def draw_rois(pixels: np.ndarray, boxes: np.ndarray, attention: np.ndarray, scale: int = 3) -> np.ndarray:
    """The image, upscaled, with each ROI box and its attention weight (yellow = most attended)."""
    size = pixels.shape[0] * scale
    img = Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    order = np.argsort(-np.asarray(attention))
    for rank, k in enumerate(order):
        x0, y0, x1, y1 = (np.asarray(boxes[k]) * scale).tolist()
        colour = (255, 220, 0) if rank == 0 else (0, 255, 170)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=2 if rank else 3)
        draw.text((x0 + 3, y0 + 2), f"#{k + 1} {attention[k]:.2f}", fill=colour)
    return np.asarray(img)


def roi_patches(pixels: np.ndarray, boxes: np.ndarray, attention: np.ndarray, size: int = 96) -> list[tuple]:
    """The ROI crops (upscaled to size px) with captions, in order of attention."""
    out = []
    for k in np.argsort(-np.asarray(attention)):
        x0, y0, x1, y1 = np.asarray(boxes[k]).tolist()
        crop = Image.fromarray(pixels[y0:y1, x0:x1]).resize((size, size), Image.Resampling.NEAREST)
        out.append((np.asarray(crop), f"ROI #{k + 1}: attention {attention[k]:.2f}"))
    return out


class _GlobalLogits(nn.Module):
    """The DCG global classifier as a single-input network (what Grad-CAM calls)."""

    def __init__(self, model: DiffMIC):
        super().__init__()
        self.dcg = model.dcg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dcg.global_logits(self.dcg.class_activation_map(x))


class _DenoiserY0(nn.Module):
    """The denoiser's y0 estimate at timestep t, started from the prior mean, as a function of the image."""

    def __init__(self, model: DiffMIC, prior: torch.Tensor, t: int):
        super().__init__()
        self.model, self.prior, self.t = model, prior, t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        prior = self.prior.expand(b, -1)
        t = torch.full((b,), self.t, dtype=torch.long, device=x.device)
        eps = self.model.denoiser(self.model.denoiser.encode(x), prior, t, prior)
        return self.model.diffusion.predict_y0(prior, eps, t, prior)


def _last_stage(net: nn.Module) -> nn.Module:
    """The last feature stage of a timm CNN (its ``feature_info``), the usual Grad-CAM target layer."""
    return net.get_submodule(net.feature_info[-1]["module"])


def grad_cam(model: DiffMIC, x: torch.Tensor, class_index: int, network: str = "global") -> np.ndarray:
    """Grad-CAM heat map (H, W) in [0, 1] of one preprocessed image (1, 3, H, W) for ``class_index``."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    if network == "global":
        wrapped, layer = _GlobalLogits(model), _last_stage(model.dcg.global_net)
    elif network == "denoiser":
        with torch.no_grad():
            prior = model.dcg(x).fused_prior
        wrapped = _DenoiserY0(model, prior, model.config.timesteps // 2)
        layer = _last_stage(model.denoiser.encoder)
    else:
        raise ValueError(f"unknown network {network!r}; use 'denoiser' or 'global'")
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), GradCAM(model=wrapped, target_layers=[layer]) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(class_index))])
    return np.nan_to_num(heat[0])
