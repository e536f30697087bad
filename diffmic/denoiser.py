"""The conditional denoiser eps_theta(c, y_t, t, prior) of DiffMIC (after CARD).

c is the image's conditioning vector, computed once per image: the global network's pooled features
(or a separate encoder's) and the attention-pooled ROI embeddings, so the head sees the local evidence
and can correct the prior rather than copy it (DiffMICv2 conditions on patch features too). Per step:

    g  = 2 sigmoid(BN(W_c c))                                  (once per image: the image gate)
    h1 = softplus(BN(CL1([y_t, prior], t))) * g
    h2 = softplus(BN(CL2(h1, t)));  h3 = softplus(BN(CL3(h2, t)));  eps = Linear(h3)

where CL(v, t) = Linear(v) * gamma(t). The authors learn gamma as 1000 independent rows, which a CPU
training budget never trains (each row sees ~1/1000 of the updates); here gamma(t) = 1 + MLP(sinusoidal
embedding of t): smooth in t, trained by every step, and tabulated once for inference
(``gain_table``), so a reverse step costs what it did with the lookup table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiffMICConfig


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(N,) timesteps → (N, dim) [cos, sin] features at geometrically spaced frequencies (DDPM's)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepGains(nn.Module):
    """The gains gamma_l(t) of L layers of width d: 1 + MLP(sinusoidal(t)), starting at exactly 1."""

    def __init__(self, layers: int, width: int, embedding_dim: int):
        super().__init__()
        self.layers, self.width, self.embedding_dim = layers, width, embedding_dim
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, width), nn.SiLU(), nn.Linear(width, layers * width))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(N,) int64 timesteps → (N, L, d) gains."""
        out = self.mlp(sinusoidal_embedding(t, self.embedding_dim))
        return 1.0 + out.view(-1, self.layers, self.width)


class ConditionalDenoiser(nn.Module):
    """Predicts the noise in a diffused label vector from the image conditioning, y_t, t and the prior."""

    def __init__(self, config: DiffMICConfig, condition_dim: int):
        super().__init__()
        c, d = config.num_classes, config.feature_dim
        self.timesteps = config.timesteps
        self.project = nn.Sequential(nn.Linear(condition_dim, d), nn.BatchNorm1d(d))
        self.linears = nn.ModuleList([nn.Linear(2 * c, d), nn.Linear(d, d), nn.Linear(d, d)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(d) for _ in self.linears])
        self.gains = TimestepGains(len(self.linears), d, config.time_embedding_dim)
        self.out = nn.Linear(d, c)

    def gate(self, condition: torch.Tensor) -> torch.Tensor:
        """(N, D) conditioning vectors → (N, d) image gates, in (0, 2); computed once per image."""
        return 2 * torch.sigmoid(self.project(condition))

    @torch.no_grad()
    def gain_table(self) -> torch.Tensor:
        """(T, L, d) gains of every timestep, for inference (a lookup per step, as the authors' table)."""
        return self.gains(torch.arange(self.timesteps, device=self.out.weight.device))

    def forward(
        self,
        gate: torch.Tensor,
        y_t: torch.Tensor,
        t: torch.Tensor,
        prior: torch.Tensor,
        gains: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted noise (N, C) from rows of gates (N, d), y_t (N, C), t (N,), prior (N, C).

        ``gains`` (N, L, d) may be given (looked up in ``gain_table``); else the MLP computes them.
        """
        gamma = self.gains(t) if gains is None else gains
        h = torch.cat([y_t, prior], dim=-1)
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms, strict=True)):
            h = F.softplus(norm(linear(h) * gamma[:, i]))
            if i == 0:
                h = h * gate
        return self.out(h)
