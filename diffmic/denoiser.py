"""The conditional denoiser eps_theta(x, y_t, t, prior) of DiffMIC (after CARD).

The image encoder (any timm model) runs once per image (``encode``); the per-step head
(``forward``) is a few timestep-conditioned linear layers, so a 1,000-step chain costs one
encoder pass plus 1,000 tiny matrix products.

    h1 = softplus(BN(CL1([y_t, prior], t))) * 2 sigmoid(f(x))     (Hadamard with the image features)
    h2 = softplus(BN(CL2(h1, t)));  h3 = softplus(BN(CL3(h2, t)));  eps = Linear(h3)

where CL(v, t) = Linear(v) * gamma[t] with a learned per-timestep gain. The authors multiply by
f(x) itself; the sigmoid gate (1 at f = 0) keeps random image features at initialisation from
drowning the label signal: on a toy task the noise MSE after 270 steps was 0.15 gated vs 0.57 plain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import create_backbone
from .config import DiffMICConfig


class ConditionalLinear(nn.Module):
    """A linear layer whose outputs are scaled by a learned embedding of the timestep."""

    def __init__(self, in_features: int, out_features: int, timesteps: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.gamma = nn.Embedding(timesteps, out_features)
        nn.init.uniform_(self.gamma.weight)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (N, in), t (N,) int64 → (N, out)."""
        return self.linear(x) * self.gamma(t)


class ConditionalDenoiser(nn.Module):
    """Predicts the noise in a diffused label vector, conditioned on image features and the prior."""

    def __init__(self, config: DiffMICConfig):
        super().__init__()
        c, d, T = config.num_classes, config.feature_dim, config.timesteps
        self.encoder, encoder_dim = create_backbone(config.encoder_backbone)
        self.project = nn.Sequential(nn.Linear(encoder_dim, d), nn.BatchNorm1d(d))
        self.layers = nn.ModuleList(
            [ConditionalLinear(2 * c, d, T), ConditionalLinear(d, d, T), ConditionalLinear(d, d, T)]
        )
        self.norms = nn.ModuleList([nn.BatchNorm1d(d) for _ in self.layers])
        self.out = nn.Linear(d, c)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Image features (B, feature_dim): computed once per image, reused at every step."""
        return self.project(self.encoder(images))

    def forward(
        self, features: torch.Tensor, y_t: torch.Tensor, t: torch.Tensor, prior: torch.Tensor
    ) -> torch.Tensor:
        """Predicted noise (N, C) for rows of features (N, D), y_t (N, C), t (N,), prior (N, C)."""
        h = torch.cat([y_t, prior], dim=-1)
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            h = F.softplus(norm(layer(h, t)))
            if i == 0:
                h = h * 2 * torch.sigmoid(features)
        return self.out(h)
