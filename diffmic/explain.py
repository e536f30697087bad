"""Where the model looked: the DCG saliency map, the ROI patches, and Grad-CAM.

Grad-CAM and its variants (via pytorch-grad-cam) can explain two networks:
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


CAM_METHODS = ("gradcam", "gradcam++", "layercam")


def _stage(net: nn.Module, stage: int) -> nn.Module:
    """A feature stage of a timm CNN by its ``feature_info`` index (-1 = last, stride 32; -2 = stride 16)."""
    return net.get_submodule(net.feature_info[stage]["module"])


def grad_cam(
    model: DiffMIC,
    x: torch.Tensor,
    class_index: int,
    network: str = "global",
    method: str = "gradcam++",
    stage: int = -2,
) -> np.ndarray:
    """A gradient-based class-activation map (H, W) in [0, 1] of one preprocessed image (1, 3, H, W).

    ``method`` is Grad-CAM, Grad-CAM++ or LayerCAM (pytorch-grad-cam); ``stage`` the backbone stage
    whose activations are weighted. The default, Grad-CAM++ on the stride-16 stage, is the one that
    pointed at lesions best in ``benchmarks/faithfulness.py`` (the last stage is only 4x4 at 128 px).
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cams = dict(zip(CAM_METHODS, (GradCAM, GradCAMPlusPlus, LayerCAM), strict=True))
    if method not in cams:
        raise ValueError(f"unknown CAM method {method!r}; use one of {', '.join(CAM_METHODS)}")
    model.eval()
    if network == "global":
        wrapped, layer = _GlobalLogits(model), _stage(model.dcg.global_net, stage)
    elif network == "denoiser":
        with torch.no_grad():
            prior = model.dcg(x).fused_prior
        wrapped = _DenoiserY0(model, prior, model.config.timesteps // 2)
        layer = _stage(model.denoiser.encoder, stage)
    else:
        raise ValueError(f"unknown network {network!r}; use 'denoiser' or 'global'")
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), cams[method](model=wrapped, target_layers=[layer]) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(class_index))])
    return np.nan_to_num(heat[0])
