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

SALIENCY_CONTRASTS = ("classes", "first-class")  # see rois.class_evidence
ROI_MAPS = ("predicted", "prior-weighted", "all-classes")  # see rois.roi_map
ENCODER_VIEWS = ("global", "full")  # see DiffMIC.encoder_input
# how the ROIs are chosen: no weight's shape depends on these, so a saved model may be trained further
# with other values (the local network and attention pooling take any number and size of crops)
ROI_OPTIONS = ("num_crops", "crop_size", "roi_map")
# the local branch's architecture: a saved model trained further from its local stage may change it (its
# global branch is kept; the local branch and the denoiser, whose input width follows it, start afresh)
LOCAL_ARCHITECTURE = ("local_backbone", "attention_dim")
# the denoiser's own encoder: a saved model trained further from its encoder stage may add or change it
ENCODER_ARCHITECTURE = ("encoder_backbone", "encoder_view")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(ValueError):
    """A config.json that is missing, unreadable or inconsistent."""


@dataclass
class DiffMICConfig:
    """Hyper-parameters of a DiffMIC model (architecture, diffusion, preprocessing, calibration, OOD)."""

    class_names: list[str] = field(default_factory=lambda: ["class 0", "class 1"])
    ordinal: bool = False  # graded labels (DR grade, Grannum grade): kappa is quadratic-weighted
    task: str = "custom"
    # preprocessing: the image is resized to image_size * local_scale (the model's input); the global
    # network sees it average-pooled to image_size, the ROI crops are cut at the full resolution
    image_size: int = 128
    local_scale: int = 2
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # dual-granularity conditional guidance (DCG)
    global_backbone: str = "resnet10t"
    output_stride: int = 16  # of the global network: the CAM is image_size / output_stride cells wide
    top_percent: float = 1.0  # top-t% CAM cells pooled into the global logits (1.0 = mean of all)
    local_backbone: str = "mobilenetv3_small_100"
    num_crops: int = 6  # K ROI patches
    crop_size: int = 32  # side of an ROI patch, in global-view pixels (crop_size * local_scale input pixels)
    roi_map: Literal["predicted", "prior-weighted", "all-classes"] = "predicted"
    roi_nms_iou: float = 0.1  # a candidate overlapping a chosen ROI by more than this is skipped
    roi_min_field: float = 1.0  # least fraction of an ROI inside the imaged field (not dark background)
    attention_dim: int = 128  # gated-attention MIL hidden size
    fusion_weights: tuple[float, float] = (0.5, 0.5)  # fused logits = w_g * global + w_l * local
    fusion: Literal["mean", "fitted"] = "mean"  # "fitted": fusion_weights fitted on validation data
    # conditional denoiser
    encoder_backbone: str | None = None  # None: the denoiser reads the DCG's features (no extra encoder)
    # what the denoiser's own encoder reads: the global view (image_size px) or the full input (input_size px)
    encoder_view: Literal["global", "full"] = "global"
    feature_dim: int = 256  # width of the timestep-conditioned layers
    time_embedding_dim: int = 64  # sinusoidal timestep embedding fed to the gain MLP
    # diffusion
    timesteps: int = 1000
    beta_schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # training losses
    mmd_weight: float = 0.5
    mmd_bandwidth: float | None = None  # Gaussian kernel bandwidth; None = number of classes, as the authors
    # inference
    temperature: float = 1.0  # label vector -> probabilities: softmax(y / temperature), fitted on validation
    # the DCG evidence map of class c: its CAM minus the mean over classes ("classes") or minus the first
    # class's CAM ("first-class": what sets c apart from class 0, the healthy class of graded tasks),
    # chosen on validation images
    saliency_contrast: Literal["classes", "first-class"] = "classes"
    cam_method: str = "gradcam++"  # the Grad-CAM variant the app shows, chosen on validation images
    cam_stage: int = -1  # its global-network stage (feature_info index)
    # distribution check (diffmic.ood; statistics in ood.safetensors): which conditioning features it reads,
    # the fraction of validation images its threshold accepts, and the threshold (None: no check)
    ood_features: Literal["global", "local", "both"] = "global"
    ood_acceptance: float = 0.95
    ood_threshold: float | None = None

    def __post_init__(self) -> None:
        self.class_names = [str(c) for c in self.class_names]
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.fusion_weights = tuple(float(v) for v in self.fusion_weights)  # type: ignore[assignment]
        self.validate()

    @property
    def num_classes(self) -> int:
        """Number of classes C (the length of the label vector that is diffused)."""
        return len(self.class_names)

    @property
    def input_size(self) -> int:
        """Side of the model's input in pixels (the ROI crops' resolution)."""
        return self.image_size * self.local_scale

    @property
    def cam_size(self) -> int:
        """Side of the class-activation map, in cells."""
        return self.image_size // self.output_stride

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
        if self.local_scale < 1:
            problems.append("local_scale must be >= 1")
        if self.output_stride not in (8, 16, 32) or self.image_size % self.output_stride:
            problems.append(f"output_stride {self.output_stride} must be 8, 16 or 32 and divide image_size")
        if self.num_crops < 1:
            problems.append("num_crops must be >= 1")
        if self.image_size >= self.output_stride and self.num_crops > self.cam_size**2:
            problems.append(
                f"num_crops {self.num_crops} exceeds the {self.cam_size}x{self.cam_size} CAM cells"
            )
        if self.roi_map not in ROI_MAPS:
            problems.append(f"unknown roi_map {self.roi_map!r}")
        if not 0 <= self.roi_nms_iou <= 1 or not 0 <= self.roi_min_field <= 1:
            problems.append("roi_nms_iou and roi_min_field must be in [0, 1]")
        if len(self.fusion_weights) != 2 or min(self.fusion_weights) < 0 or sum(self.fusion_weights) <= 0:
            problems.append("fusion_weights needs two non-negative values, not both 0")
        if self.fusion not in ("mean", "fitted"):
            problems.append(f"unknown fusion {self.fusion!r}")
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
        if self.saliency_contrast not in SALIENCY_CONTRASTS:
            problems.append(f"unknown saliency_contrast {self.saliency_contrast!r}")
        if self.cam_method not in ("gradcam", "gradcam++", "layercam"):
            problems.append(f"unknown cam_method {self.cam_method!r}")
        if self.temperature <= 0:
            problems.append("temperature must be > 0")
        if self.encoder_view not in ENCODER_VIEWS:
            problems.append(f"unknown encoder_view {self.encoder_view!r}")
        if self.ood_features not in ("global", "local", "both"):
            problems.append(f"unknown ood_features {self.ood_features!r}")
        if not 0 < self.ood_acceptance < 1:
            problems.append("ood_acceptance must be in (0, 1)")
        if problems:
            raise ConfigError("invalid DiffMIC config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["fusion_weights"] = list(self.fusion_weights)
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
