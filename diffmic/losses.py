"""Training losses: the noise-matching loss with DiffMIC's MMD regulariser, and the DCG loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .dcg import Guidance
from .diffusion import LabelDiffusion


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """k(a_i, b_j) = exp(-mean_d (a_id - b_jd)^2 / bandwidth) for rows of a (N, D) and b (M, D).

    The squared distances come from one matrix product (|a|^2 + |b|^2 - 2 a b^T), not an (N, M, D)
    difference tensor: at the cached stage's 1,024 rows that tensor and its gradient were most of a step.
    """
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2.0 * (a @ b.T)
    return torch.exp(-sq.clamp_min(0.0) / (a.shape[1] * bandwidth))


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 1.0) -> torch.Tensor:
    """Biased estimate of the squared Maximum Mean Discrepancy between the row samples x and y."""
    return (
        gaussian_kernel(x, x, bandwidth).mean()
        + gaussian_kernel(y, y, bandwidth).mean()
        - 2 * gaussian_kernel(x, y, bandwidth).mean()
    )


def antithetic_timesteps(
    batch: int, timesteps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Half the batch uniform in [0, T), the other half mirrored (T-1-t): lower-variance loss estimates."""
    half = torch.randint(0, timesteps, ((batch + 1) // 2,), generator=generator)
    return torch.cat([half, timesteps - 1 - half])[:batch]


@dataclass
class DiffusionLoss:
    """The parts of DiffMIC's denoiser objective for logging."""

    total: torch.Tensor
    mse: torch.Tensor
    mmd_global: torch.Tensor
    mmd_local: torch.Tensor


def diffusion_loss(
    denoiser: torch.nn.Module,
    condition: torch.Tensor,
    y0: torch.Tensor,
    priors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    diffusion: LabelDiffusion,
    mmd_weight: float,
    bandwidth: float,
    generator: torch.Generator | None = None,
    timesteps_per_image: int = 1,
) -> DiffusionLoss:
    """||eps - eps_theta(c, y_t, t, fused)||^2 + w * [MMD(eps, eps_theta|global) + MMD(eps, eps_theta|local)].

    ``condition`` (B, D) are the images' conditioning vectors, ``priors`` the (fused, global, local)
    prior means (B, C). The three chains share t and eps; y_t^global and y_t^local are diffused towards
    their own priors. ``timesteps_per_image`` > 1 draws several (t, eps) per image, so each batch
    teaches more of the chain for the price of the cheap head only.
    """
    k = timesteps_per_image
    if k > 1:
        condition, y0 = condition.repeat_interleave(k, 0), y0.repeat_interleave(k, 0)
        priors = tuple(p.repeat_interleave(k, 0) for p in priors)  # type: ignore[assignment]
    b = y0.shape[0]
    t = antithetic_timesteps(b, diffusion.timesteps, generator).to(y0.device)
    eps = torch.randn(y0.shape, generator=generator).to(y0.device)
    gate = denoiser.gate(condition)
    if mmd_weight > 0:
        # one batched pass over the three conditionings
        y_t = torch.cat([diffusion.q_sample(y0, p, t, eps) for p in priors])
        out = denoiser(gate.repeat(3, 1), y_t, t.repeat(3), torch.cat(priors))
        eps_f, eps_g, eps_l = out.split(b)
        m_g, m_l = mmd(eps, eps_g, bandwidth), mmd(eps, eps_l, bandwidth)
    else:
        eps_f = denoiser(gate, diffusion.q_sample(y0, priors[0], t, eps), t, priors[0])
        m_g = m_l = torch.zeros((), device=y0.device)
    mse = F.mse_loss(eps_f, eps)
    return DiffusionLoss(mse + mmd_weight * (m_g + m_l), mse, m_g, m_l)


def global_loss(guidance_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Stage 1a: cross-entropy of the global network's logits."""
    return F.cross_entropy(guidance_logits, labels)


def local_loss(guidance: Guidance, labels: torch.Tensor) -> torch.Tensor:
    """Stage 1b: cross-entropy of the local logits and of the fused logits (the local branch learns to
    classify on its own and to add to the frozen global branch)."""
    return F.cross_entropy(guidance.local_logits, labels) + F.cross_entropy(guidance.fused_logits, labels)
