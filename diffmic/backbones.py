"""timm backbones: any timm model name works; weights are never downloaded (pretrained=False)."""

from __future__ import annotations

import timm
import torch
from torch import nn


def create_backbone(name: str, *, pooled: bool = True, probe_size: int = 64) -> tuple[nn.Module, int]:
    """A timm model without classifier and the width of its output (measured, not read from attributes).

    ``pooled=True`` gives (B, D) vectors; ``pooled=False`` a (B, D, H, W) feature map from
    ``forward_features``. Some models (MobileNetV3) add a head layer after pooling, so the width is
    taken from one dry forward pass rather than ``num_features``.
    """
    try:
        net = timm.create_model(
            name, pretrained=False, num_classes=0, **({} if pooled else {"global_pool": ""})
        )
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise ValueError(f"unknown timm backbone {name!r}: {err}") from err
    was_training = net.training
    net.eval()
    with torch.no_grad():
        probe = torch.zeros(1, 3, probe_size, probe_size)
        out = net(probe) if pooled else net.forward_features(probe)
    net.train(was_training)
    return net, int(out.shape[1] if not pooled or out.dim() == 2 else out.shape[-1])
