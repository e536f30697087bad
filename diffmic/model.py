"""DiffMIC's networks in one module: the DCG prior network, the conditional denoiser and the label diffusion.

The model knows no images and no loops: ``condition`` runs the once-per-image passes on a preprocessed
batch, ``eps`` is one step of the denoiser. Preprocessing, the reverse chain and the result live in
``diffmic.pipeline``. Weights are saved and loaded as ``config.json`` + ``model.safetensors``
(``diffmic.hub``), with the distribution check's ``ood.safetensors`` when the model has one
(``diffmic.ood``)::

    model = DiffMIC.from_pretrained("weights/fundus")        # a folder or a Hub repo id
    model.save_pretrained("runs/my-model")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import hub, ood
from .backbones import create_backbone
from .config import DiffMICConfig
from .dcg import DualGuidance, Guidance
from .denoiser import ConditionalDenoiser
from .diffusion import LabelDiffusion


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Conditioning:
    """What the once-per-image passes give for a batch of B images: the DCG outputs and the denoiser's
    conditioning vectors (B, D) — everything a reverse chain needs besides the noise."""

    guidance: Guidance
    features: torch.Tensor  # (B, D)

    def prior(self, which: str = "fused") -> torch.Tensor:
        """(B, C) prior mean of a chain (see ``Guidance.prior``)."""
        return self.guidance.prior(which)


def check_encoder_from_global(config: DiffMICConfig) -> None:
    """Raise unless the denoiser's encoder can start from the global network's weights (one backbone)."""
    if config.encoder_backbone != config.global_backbone:
        raise ValueError(
            "the encoder can start from the global network's weights only with one backbone for both, "
            f"got {config.encoder_backbone} (encoder) and {config.global_backbone} (global)"
        )


class DiffMIC(nn.Module):
    """Dual-guidance diffusion classifier (Yang et al., MICCAI 2023)."""

    def __init__(self, config: DiffMICConfig):
        super().__init__()
        self.config = config
        self.dcg = DualGuidance(config)
        # the denoiser's own image encoder (optional), trained with cross-entropy through ``encoder_head``
        # and then frozen, so that what it gives the denoiser is evidence of its own and can be cached
        self.encoder, encoder_dim = (
            create_backbone(config.encoder_backbone) if config.encoder_backbone else (None, 0)
        )
        self.encoder_head = nn.Linear(encoder_dim, config.num_classes) if self.encoder is not None else None
        image_dim = encoder_dim or self.dcg.global_dim
        self.condition_dim = image_dim + self.dcg.local_dim  # width D of the conditioning vectors
        self.denoiser = ConditionalDenoiser(config, self.condition_dim)
        self.diffusion = LabelDiffusion(
            config.timesteps, config.beta_schedule, config.beta_start, config.beta_end
        )
        # the fitted distribution check (not a parameter: saved as ood.safetensors, not in the state dict)
        self.ood_check: ood.DistributionCheck | None = None

    @property
    def ood_width(self) -> int:
        """Width of the features the distribution check reads."""
        local = self.dcg.local_dim
        total = self.condition_dim
        return {"both": total, "local": local, "global": total - local}[self.config.ood_features]

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(self.parameters()).device

    def encoder_from_global(self) -> None:
        """Start the denoiser's encoder from the trained global network's weights (one backbone for both)."""
        check_encoder_from_global(self.config)
        assert self.encoder is not None
        self.encoder.load_state_dict(self.dcg.global_net.state_dict())

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the own encoder reads of a preprocessed batch: the full input or the global view."""
        return x if self.config.encoder_view == "full" else self.dcg.global_view(x)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The own encoder's pooled features (B, De) and its classifier's logits (B, C) (needs an encoder)."""
        if self.encoder is None or self.encoder_head is None:
            raise ValueError("this model has no encoder of its own (encoder_backbone is None)")
        features = self.encoder(self.encoder_input(x))
        return features, self.encoder_head(features)

    def condition_features(self, x: torch.Tensor, guidance: Guidance) -> torch.Tensor:
        """(B, D) conditioning: the image features (DCG global or own encoder) and the local evidence."""
        image = self.encode(x)[0] if self.encoder is not None else guidance.global_features
        return torch.cat([image, guidance.local_features], dim=-1)

    def condition(self, x: torch.Tensor) -> Conditioning:
        """The once-per-image passes on a preprocessed batch (B, 3, input_size, input_size)."""
        guidance = self.dcg(x)
        return Conditioning(guidance, self.condition_features(x, guidance))

    def ood_features(self, features: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """The columns of conditioning vectors (B, D) that the distribution check reads (``ood_features``)."""
        return ood.feature_part(features, self.config.ood_features, self.dcg.local_dim)

    def ood_scores(self, features: torch.Tensor) -> np.ndarray | None:
        """Distribution-check scores (B,) of conditioning vectors (B, D); None without a check."""
        return None if self.ood_check is None else self.ood_check.score(self.ood_features(features))

    def check_distribution(self, features: torch.Tensor) -> list[dict[str, Any]]:
        """The ``ood`` verdict (available, score, threshold, flagged) of each conditioning vector (B, D)."""
        scores = self.ood_scores(features)
        if scores is None or self.config.ood_threshold is None:
            return [dict(ood.NO_OOD_CHECK) for _ in range(features.shape[0])]
        return [ood.verdict(s, self.config.ood_threshold) for s in scores]

    def eps(
        self, gate: torch.Tensor, y_t: torch.Tensor, t: torch.Tensor, prior: torch.Tensor
    ) -> torch.Tensor:
        """One denoiser step: predicted noise for rows of image gates, y_t, timesteps and priors."""
        return self.denoiser(gate, y_t, t, prior)

    # ---------------------------------------------------------------- weights
    def save_pretrained(self, folder: str | Path, card: str | None = None, half: bool = False) -> Path:
        """Write config.json, model.safetensors, the distribution check and a model card into ``folder``.

        The check's statistics are always stored in float32 (``half`` only concerns the weights)."""
        folder = hub.save_folder(folder, self.config, self.state_dict(), card=card, half=half)
        ood.save_check(self.ood_check, folder)
        return folder

    @classmethod
    def from_pretrained(
        cls,
        folder_or_repo: str | Path,
        *,
        device: str | None = "cpu",
        revision: str | None = None,
        token: str | None = None,
        load_ood: bool = True,
    ) -> DiffMIC:
        """Load from a local folder or a Hugging Face Hub repo id, strictly, from safetensors only.

        ``ood.safetensors`` (the distribution check) is loaded when present, unless ``load_ood`` is False."""
        folder = hub.resolve_folder(folder_or_repo, revision, token)
        config, state = hub.read_folder(folder)
        model = cls(config)
        hub.check_state_dict(model, state, config)
        model.load_state_dict(state, strict=True)
        model.ood_check = ood.load_check(folder, model.ood_width) if load_ood else None
        return model.to(resolve_device(device)).eval()

    def push_to_hub(
        self, repo_id: str, *, private: bool = False, token: str | None = None, card: str | None = None
    ) -> str:
        """Upload config, weights and model card to the Hub; returns the repo URL."""
        return hub.push_folder(
            repo_id, lambda folder: self.save_pretrained(folder, card=card), private, token
        )
