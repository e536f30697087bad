"""Training losses: the noise-matching loss with DiffMIC's MMD regulariser, and the DCG loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .dcg import Guidance
from .diffusion import LabelDiffusion


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """k(a_i, b_j) = exp(-mean_d (a_id - b_jd)^2 / bandwidth) for rows of a (N, D) and b (M, D)."""
    return torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).mean(-1) / bandwidth)


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
    denoiser,
    features: torch.Tensor,
    y0: torch.Tensor,
    guidance: Guidance,
    diffusion: LabelDiffusion,
    mmd_weight: float,
    bandwidth: float,
    generator: torch.Generator | None = None,
    timesteps_per_image: int = 1,
) -> DiffusionLoss:
    """||eps - eps_theta(x, y_t, t, fused)||^2 + w * [MMD(eps, eps_theta|global) + MMD(eps, eps_theta|local)].

    The three chains share t and eps; y_t^global and y_t^local are diffused towards their own priors.
    ``timesteps_per_image`` > 1 draws several (t, eps) per image: the image is encoded once and only
    the cheap per-step head runs on the extra rows, so each batch teaches more of the chain.
    """
    k = timesteps_per_image
    if k > 1:
        features, y0 = features.repeat_interleave(k, 0), y0.repeat_interleave(k, 0)
        priors = tuple(
            p.repeat_interleave(k, 0)
            for p in (guidance.fused_prior, guidance.global_prior, guidance.local_prior)
        )
    else:
        priors = (guidance.fused_prior, guidance.global_prior, guidance.local_prior)
    b = y0.shape[0]
    t = antithetic_timesteps(b, diffusion.timesteps, generator).to(y0.device)
    eps = torch.randn(y0.shape, generator=generator).to(y0.device)
    if mmd_weight > 0:
        # one batched pass over the three conditionings
        y_t = torch.cat([diffusion.q_sample(y0, p, t, eps) for p in priors])
        out = denoiser(features.repeat(3, 1), y_t, t.repeat(3), torch.cat(priors))
        eps_f, eps_g, eps_l = out.split(b)
        m_g, m_l = mmd(eps, eps_g, bandwidth), mmd(eps, eps_l, bandwidth)
    else:
        eps_f = denoiser(features, diffusion.q_sample(y0, priors[0], t, eps), t, priors[0])
        m_g = m_l = torch.zeros((), device=y0.device)
    mse = F.mse_loss(eps_f, eps)
    return DiffusionLoss(mse + mmd_weight * (m_g + m_l), mse, m_g, m_l)


def dcg_loss(guidance: Guidance, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the global, local and fused predictions of the DCG."""
    fused_log = guidance.fused_prior.clamp_min(1e-8).log()
    return (
        F.cross_entropy(guidance.global_logits, labels)
        + F.cross_entropy(guidance.local_logits, labels)
        + F.nll_loss(fused_log, labels)
    )
