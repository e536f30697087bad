"""The one configuration object of a DiffMIC model.

It is saved as ``config.json`` next to ``model.safetensors`` and travels with the weights:
everything needed to rebuild the network and preprocess an image lives here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(ValueError):
    """A config.json that is missing, unreadable or inconsistent."""


@dataclass
class DiffMICConfig:
    """Hyper-parameters of a DiffMIC model (architecture, diffusion, preprocessing, training losses)."""

    class_names: list[str] = field(default_factory=lambda: ["class 0", "class 1"])
    ordinal: bool = False  # graded labels (DR grade, Grannum grade): kappa is quadratic-weighted
    task: str = "custom"
    # preprocessing
    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # dual-granularity conditional guidance (DCG)
    global_backbone: str = "resnet18"
    local_backbone: str = "resnet18"
    num_crops: int = 6  # K ROI patches
    crop_size: int = 32  # side of an ROI patch, in input pixels
    cam_size: int = 7  # side of the class-activation map (the global network's output grid)
    top_percent: float = 1.0  # top-t% CAM cells aggregated into the global prior (1.0 = mean of all)
    attention_dim: int = 128  # gated-attention MIL hidden size
    # conditional denoiser
    encoder_backbone: str = "resnet18"
    feature_dim: int = 512  # width of the timestep-conditioned layers
    # diffusion
    timesteps: int = 1000
    beta_schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # training losses
    mmd_weight: float = 0.5
    mmd_bandwidth: float | None = (
        None  # Gaussian kernel bandwidth; None = number of classes, as the authors do
    )
    # inference
    temperature: float = (
        1.0  # label vector -> probabilities: softmax(y / temperature), fitted on validation data
    )

    def __post_init__(self) -> None:
        self.class_names = [str(c) for c in self.class_names]
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.validate()

    @property
    def num_classes(self) -> int:
        """Number of classes C (the length of the label vector that is diffused)."""
        return len(self.class_names)

    def validate(self) -> None:
        """Raise ConfigError when a value is out of range."""
        problems = []
        if len(self.class_names) < 2:
            problems.append("at least 2 class names are needed")
        if len(set(self.class_names)) != len(self.class_names):
            problems.append("class names must be unique")
        if self.image_size < 32:
            problems.append(f"image_size {self.image_size} < 32")
        if not 1 <= self.crop_size <= self.image_size:
            problems.append(f"crop_size {self.crop_size} must be within 1..image_size")
        if self.num_crops < 1:
            problems.append("num_crops must be >= 1")
        if self.num_crops > self.cam_size**2:
            problems.append(
                f"num_crops {self.num_crops} exceeds the {self.cam_size}x{self.cam_size} CAM cells"
            )
        if not 0 < self.top_percent <= 1:
            problems.append("top_percent must be in (0, 1]")
        if self.timesteps < 2:
            problems.append("timesteps must be >= 2")
        if not 0 < self.beta_start < self.beta_end < 1:
            problems.append("need 0 < beta_start < beta_end < 1")
        if self.beta_schedule not in ("linear", "cosine"):
            problems.append(f"unknown beta_schedule {self.beta_schedule!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std need 3 values each, std > 0")
        if self.temperature <= 0:
            problems.append("temperature must be > 0")
        if problems:
            raise ConfigError("invalid DiffMIC config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffMICConfig:
        """Build from a dict, refusing unknown keys so a typo never passes silently."""
        if not isinstance(data, dict):
            raise ConfigError("config.json must hold a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"model_type", "library"})
        if unknown:
            raise ConfigError(f"config.json has unknown keys: {', '.join(unknown)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:
            raise ConfigError(f"config.json is inconsistent: {err}") from err

    def save(self, path: str | Path) -> None:
        """Write as pretty JSON."""
        payload = {"model_type": "diffmic", **self.to_dict()}
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DiffMICConfig:
        """Read config.json with a clear error when it is missing or not JSON."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"missing config file: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path.name} is not valid JSON: {err}") from err
        return cls.from_dict(data)
