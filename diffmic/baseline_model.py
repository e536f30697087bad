"""The plain-CNN baseline as a model: ``CNNConfig`` (what rebuilds it: its classes, backbone and
preprocessing, as DiffMIC's global view), ``CNNClassifier`` (a timm backbone and a linear head on its class
map; saved and loaded like a DiffMIC, or made from a DiffMIC's global network) and ``predict_probs`` over a
dataset. Training it is ``baseline.py``'s."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from . import hub
from .backbones import create_backbone
from .config import IMAGENET_MEAN, IMAGENET_STD, DiffMICConfig
from .data.datasets import batch_of
from .dcg import top_pool
from .model import DiffMIC
from .transforms import normalise


@dataclass
class CNNConfig:
    """What rebuilds a baseline: its classes, backbone and preprocessing (as DiffMIC's global view)."""

    class_names: list[str]
    ordinal: bool = False
    task: str = "custom"
    backbone: str = "resnet10t"
    image_size: int = 128  # the network's input side
    input_scale: int = 2  # inputs arrive at image_size * input_scale and are average-pooled (as DiffMIC's)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output_stride: int = 32  # the backbone's (16: dilated last stage, as DiffMIC's global network)
    top_percent: float = 1.0  # logits: mean of each class's top-t% cells of the class map (1.0: all)
    model_type: str = "cnn"

    @property
    def input_size(self) -> int:
        """Side of the input pixels."""
        return self.image_size * self.input_scale

    @classmethod
    def like(cls, config: DiffMICConfig, network: str = "global") -> CNNConfig:
        """The baseline that matches one network of a DiffMIC config: its global network (backbone, view,
        stride), or the denoiser's own encoder (its backbone at its view, stride 32, a linear head on the
        pooled features: the mean of the class map is that)."""
        if network not in ("global", "encoder"):
            raise ValueError(f"network must be 'global' or 'encoder', not {network!r}")
        if network == "global":
            backbone, size, scale = config.global_backbone, config.image_size, config.local_scale
            stride, top = config.output_stride, config.top_percent
        elif not config.encoder_backbone:
            raise ValueError("this DiffMIC has no encoder of its own")
        else:
            full = config.encoder_view == "full"
            backbone, stride, top = config.encoder_backbone, 32, 1.0
            size, scale = (config.input_size, 1) if full else (config.image_size, config.local_scale)
        names = (list(config.class_names), config.ordinal, config.task)
        return cls(*names, backbone, size, scale, config.mean, config.std, stride, top)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (what a checkpoint must match to be resumed)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> CNNConfig:
        """Read a JSON written by ``save``."""
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise hub.ModelLoadError(f"cannot read {path}: {err}") from err
        if data.get("model_type") != "cnn":
            raise hub.ModelLoadError(f"{path} is not a CNN baseline config")
        return cls(**data)


class CNNClassifier(nn.Module):
    """A timm backbone with a linear classifier on its pooled feature map (top-t% pooling of the class map;
    with t = 100 %, a linear layer on average-pooled features)."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        self.backbone, dim = create_backbone(
            config.backbone, pooled=False, output_stride=config.output_stride
        )
        self.head = nn.Linear(dim, len(config.class_names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C) of preprocessed inputs (B, 3, input_size, input_size)."""
        s = self.config.input_scale
        return self.forward_view(F.avg_pool2d(x, s) if s > 1 else x)

    def forward_view(self, view: torch.Tensor) -> torch.Tensor:
        """``forward`` of inputs already average-pooled to the network's view (image_size px)."""
        fmap = self.backbone.forward_features(view)
        cam = torch.einsum("bdhw,cd->bchw", fmap, self.head.weight) + self.head.bias[:, None, None]
        return top_pool(cam, self.config.top_percent)

    @classmethod
    def from_global_network(cls, model: DiffMIC) -> CNNClassifier:
        """DiffMIC's global network as a classifier of its own (its logits are the global prior's)."""
        cnn = cls(CNNConfig.like(model.config))
        head = model.dcg.cam_head
        cnn.backbone.load_state_dict(model.dcg.global_net.state_dict())
        cnn.head.load_state_dict({"weight": head.weight[:, :, 0, 0], "bias": head.bias})
        return cnn.eval()

    def save_pretrained(self, folder: Path) -> None:
        """config.json + model.safetensors."""
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / hub.CONFIG_NAME)
        hub.save_tensors(self.state_dict(), folder / hub.WEIGHTS_NAME, half=True, model_type="cnn")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> CNNClassifier:
        """Load a saved baseline, strictly, from safetensors."""
        folder = Path(folder)
        model = cls(CNNConfig.load(folder / hub.CONFIG_NAME))
        model.load_state_dict(hub.load_tensors(folder / hub.WEIGHTS_NAME), strict=True)
        return model.eval()


@torch.no_grad()
def predict_probs(model: CNNClassifier, dataset: Dataset, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities (N, C) over a dataset."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        pixels, _ = batch_of(dataset, np.arange(start, min(start + batch_size, len(dataset))))
        x = normalise(pixels.numpy(), model.config).to(model.head.weight.device)
        out.append(model(x).softmax(-1).cpu().numpy())
    return np.concatenate(out)
