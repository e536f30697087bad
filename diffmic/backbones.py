"""timm backbones: any timm model name works; weights are never downloaded (pretrained=False)."""

from __future__ import annotations

import timm
import torch
from torch import nn


def create_backbone(
    name: str, *, pooled: bool = True, probe_size: int = 64, output_stride: int = 32
) -> tuple[nn.Module, int]:
    """A timm model without classifier and the width of its output (measured, not read from attributes).

    ``pooled=True`` gives (B, D) vectors; ``pooled=False`` a (B, D, H, W) feature map from
    ``forward_features``. ``output_stride`` 16 or 8 dilates the last stages (timm's option for ResNets
    and most CNNs) for a finer feature map. Some models (MobileNetV3) add a head layer after pooling,
    so the width is taken from one dry forward pass rather than ``num_features``.
    """
    kwargs: dict = {} if pooled else {"global_pool": ""}
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    try:
        net = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise ValueError(f"unknown timm backbone {name!r}: {err}") from err
    except TypeError as err:  # a model without the output_stride option
        raise ValueError(f"timm backbone {name!r} cannot run at output stride {output_stride}") from err
    was_training = net.training
    net.eval()
    with torch.no_grad():
        probe = torch.zeros(1, 3, probe_size, probe_size)
        out = net(probe) if pooled else net.forward_features(probe)
    net.train(was_training)
    return net, int(out.shape[1] if not pooled or out.dim() == 2 else out.shape[-1])
