"""Where the model looked, by gradients: Grad-CAM and its variants (pytorch-grad-cam) on two networks.

- ``global``: the DCG's global classifier (its class logits);
- ``denoiser``: the whole conditioning path (global network and ROI branch) through the clean-label
  estimate y0 that the denoiser makes from the prior mean at a middle timestep: which pixels move the
  diffusion's answer towards a class.

The DCG's own maps (its CAM, the ROIs) come with every result (``diffmic.pipeline``); drawing any of
them is ``diffmic.drawing``'s job.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import DiffMIC


class _GlobalLogits(nn.Module):
    """The DCG global classifier as a single-input network (what Grad-CAM calls)."""

    def __init__(self, model: DiffMIC):
        super().__init__()
        self.dcg = model.dcg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dcg.global_branch(x)[1]


class _DenoiserY0(nn.Module):
    """The denoiser's y0 estimate at timestep t, started from the prior mean, as a function of the image."""

    def __init__(self, model: DiffMIC, prior: torch.Tensor, t: int):
        super().__init__()
        self.model, self.prior, self.t = model, prior, t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        prior = self.prior.expand(b, -1)
        t = torch.full((b,), self.t, dtype=torch.long, device=x.device)
        gate = self.model.denoiser.gate(self.model.condition(x).features)
        eps = self.model.denoiser(gate, prior, t, prior)
        return self.model.diffusion.predict_y0(prior, eps, t, prior)


CAM_METHODS = ("gradcam", "gradcam++", "layercam")


def _stage(net: nn.Module, stage: int) -> nn.Module:
    """A feature stage of a timm CNN by its ``feature_info`` index (-1 = the last, -2 the one before)."""
    return net.get_submodule(net.feature_info[stage]["module"])


def grad_cam(
    model: DiffMIC,
    x: torch.Tensor,
    class_index: int,
    network: str = "global",
    method: str | None = None,
    stage: int | None = None,
) -> np.ndarray:
    """A gradient-based class-activation map (H, W) in [0, 1] of one preprocessed image (1, 3, H, W).

    ``method`` is Grad-CAM, Grad-CAM++ or LayerCAM (pytorch-grad-cam); ``stage`` the backbone stage
    whose activations are weighted (a ``feature_info`` index: -1 the last). The defaults are the
    model's ``cam_method`` and ``cam_stage``, chosen on validation images (``diffmic.selection``).
    """
    method = method or model.config.cam_method
    stage = model.config.cam_stage if stage is None else stage
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
        layer = _stage(model.encoder or model.dcg.global_net, stage)
    else:
        raise ValueError(f"unknown network {network!r}; use 'denoiser' or 'global'")
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), cams[method](model=wrapped, target_layers=[layer]) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(class_index))])
    return np.nan_to_num(heat[0])
