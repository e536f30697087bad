"""The distribution check: does an image look like the images the model was trained on?

Class-conditional Gaussians with one shared covariance on the model's conditioning features (Lee et al.,
NeurIPS 2018): the score of an image is its squared Mahalanobis distance to the nearest class mean,
divided by the number of dimensions (training-like images score about 1; higher = less like the training
data). The covariance is estimated from within-class deviations and shrunk towards a scaled identity with
the Ledoit-Wolf shrinkage (Ledoit & Wolf, 2004), so it stays well conditioned when the features have
more dimensions than there are images. The threshold is set on the scores of validation images so that a
fresh in-distribution image is accepted with probability ``acceptance`` (a split-conformal quantile).

It reads the image part of the conditioning (``ood_features="global"``: the DCG's global-network features,
or the denoiser's own encoder's): measured on models trained for this package it separated the other tasks'
images and real images of other kinds as well as the global and local parts together (at a third of the
width) and far better than the attention-pooled ROI embedding alone, and the full shrunk covariance beat
keeping the leading 32 or 128 principal directions and standardising the features first.

The fitting (training code) lives in ``diffmic.ood_fit``; this module is the check a prediction runs.

Stored beside the weights as ``ood.safetensors`` (a centre, a whitening projection and the class means in
whitened coordinates: score = min_c ||W (f - centre) - m_c||^2 / K); the threshold and the settings live in
config.json (``ood_threshold``, ``ood_features``, ``ood_acceptance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import DiffMICConfig
from .hub import OOD_NAME, ModelLoadError, load_tensors, save_tensors

FEATURE_PARTS = ("global", "local", "both")
# what a prediction reports for a model saved without a distribution check
NO_OOD_CHECK: dict[str, Any] = {"available": False, "score": None, "threshold": None, "flagged": False}


def feature_part(features: torch.Tensor | np.ndarray, part: str, local_dim: int):
    """The columns of conditioning features (..., D) that the check reads: the image (``global``)
    features, the attention-pooled ROI (``local``) embedding, or ``both``."""
    if part == "both":
        return features
    if part == "local":
        return features[..., -local_dim:]
    if part == "global":
        return features[..., :-local_dim]
    raise ValueError(f"unknown feature part {part!r}; use one of {', '.join(FEATURE_PARTS)}")


@dataclass
class DistributionCheck:
    """Fitted statistics: score(f) = min over classes c of ||W (f - centre) - m_c||^2 / K."""

    center: torch.Tensor  # (D,)
    projection: torch.Tensor  # (K, D) whitening projection W
    class_means: torch.Tensor  # (C, K) class means in whitened coordinates

    @property
    def dim(self) -> int:
        """Width D of the features it reads."""
        return self.center.shape[0]

    @torch.no_grad()
    def score(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """Scores (B,) of features (B, D): higher = less like the training data."""
        f = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
        z = (f.detach().float().cpu() - self.center) @ self.projection.T
        d2 = ((z[:, None, :] - self.class_means[None]) ** 2).sum(-1)
        return (d2.min(-1).values / self.projection.shape[0]).numpy().astype(np.float64)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors of ``ood.safetensors``."""
        return {"center": self.center, "projection": self.projection, "class_means": self.class_means}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], dim: int | None = None) -> DistributionCheck:
        """Rebuild from ``to_tensors()``; ModelLoadError when a tensor is missing or the shapes disagree."""
        missing = sorted({"center", "projection", "class_means"} - set(state))
        if missing:
            raise ModelLoadError(f"{OOD_NAME} lacks the tensors {', '.join(missing)}")
        center, projection, means = (state[k].float() for k in ("center", "projection", "class_means"))
        ok = (
            center.dim() == 1
            and projection.dim() == 2
            and means.dim() == 2
            and projection.shape[1] == center.shape[0]
            and means.shape[1] == projection.shape[0]
        )
        if not ok:
            raise ModelLoadError(f"{OOD_NAME} has inconsistent shapes")
        if dim is not None and center.shape[0] != dim:
            raise ModelLoadError(
                f"{OOD_NAME} is for {center.shape[0]} features but the model gives {dim} "
                "(fitted for another model or another ood_features setting?)"
            )
        return cls(center, projection, means)


def verdict(score: float | None, threshold: float | None) -> dict[str, Any]:
    """The ``ood`` dict of a prediction: available, score, threshold, flagged (score > threshold)."""
    if score is None or threshold is None:
        return dict(NO_OOD_CHECK)
    flagged = bool(score > threshold)
    return {"available": True, "score": float(score), "threshold": float(threshold), "flagged": flagged}


def assessable(ood: dict[str, Any]) -> bool:
    """Can the model's answer be acted on? Not when its distribution check flags the image (a model
    without a check cannot say, so its answers count as assessable); the API's ``assessable`` field."""
    return not bool(ood.get("flagged"))


def training_images(config: DiffMICConfig) -> str:
    """How to name the images a model was trained on in a sentence: "the dermoscopy images"."""
    from .tasks import images_phrase

    return images_phrase(config.task)


def warning(config: DiffMICConfig) -> str:
    """The one-line warning shown with a flagged prediction."""
    return (
        f"this image does not look like {training_images(config)} this model was trained on; "
        "the answer is unreliable"
    )


def save_check(check: DistributionCheck | None, folder: str | Path) -> None:
    """Write ``ood.safetensors`` into a model folder (a model without a check: remove a stale one)."""
    path = Path(folder) / OOD_NAME
    if check is None:
        path.unlink(missing_ok=True)
        return
    save_tensors(check.to_tensors(), path, model_type="diffmic-ood")


def load_check(folder: str | Path, dim: int | None = None) -> DistributionCheck | None:
    """The check stored in a model folder, or None when it has no ``ood.safetensors``."""
    path = Path(folder) / OOD_NAME
    if not path.is_file():
        return None
    return DistributionCheck.from_tensors(load_tensors(path), dim)
