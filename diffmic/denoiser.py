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
from dataclasses import dataclass

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


FAST_SOFTPLUS_MIN = 1024  # elements: 4 rows of a 256-wide head (crossover from measured per-call costs: ~800)


class _Softplus(torch.autograd.Function):
    """softplus(x) = max(x, 0) + log(1 + exp(-|x|)), with its gradient sigmoid(x).

    ``F.softplus`` goes through ``log1p``, which this build of torch does not vectorise on the CPU: 4-5x
    slower on a head's (rows, 256) activations, where the reverse chain and the diffusion stage spend most
    of their time (``benchmarks/speed.py``). ``log(1 + e)`` with e = exp(-|x|) in (0, 1] loses nothing in
    absolute terms, which is all a sum with max(x, 0) keeps: within 1e-6 of ``F.softplus`` (a test). Its five
    operations cost more than ``F.softplus``'s one below ``FAST_SOFTPLUS_MIN`` elements (a single chain's
    row), where ``softplus`` keeps torch's."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _stable_softplus_(x.clone())

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


def _stable_softplus_(x: torch.Tensor) -> torch.Tensor:
    """``x`` becomes max(x, 0) + log(1 + exp(-|x|)), in place (``_Softplus``'s form)."""
    tail = x.abs().neg_().exp_().add_(1).log_()
    return x.clamp_(min=0).add_(tail)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)), elementwise, fast on the CPU (see ``_Softplus``)."""
    return F.softplus(x) if x.numel() < FAST_SOFTPLUS_MIN else _Softplus.apply(x)


def softplus_(x: torch.Tensor, fast_min: int = FAST_SOFTPLUS_MIN) -> torch.Tensor:
    """``softplus`` in place, for inference: ``x`` becomes softplus(x) (the reverse chain's buffers). The
    threshold is an argument with the constant as its default so that TorchScript can compile it."""
    return x.copy_(F.softplus(x)) if x.numel() < fast_min else _stable_softplus_(x)


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


@dataclass(frozen=True)
class FoldedHead:
    """The eval-mode head as plain tensors (d = width, C = classes, T = timesteps): what ``diffmic.lean``
    runs. Layer l at timestep t is softplus((v @ W_l) * scale[t, l] + shift[t, l]); the first layer's
    input is [y_t, prior], its weights split into ``w_y`` and ``w_prior``; eps = h3 @ w_out + b_out."""

    w_y: torch.Tensor  # (C, d) first layer, y_t part (transposed: rows @ w_y)
    w_prior: torch.Tensor  # (C, d) first layer, prior part
    weights: tuple[torch.Tensor, torch.Tensor]  # (d, d) x 2: the second and third layers
    scale: torch.Tensor  # (T, 3, d)
    shift: torch.Tensor  # (T, 3, d)
    w_out: torch.Tensor  # (d, C)
    b_out: torch.Tensor  # (C,)


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

    @torch.no_grad()
    def fold(self) -> FoldedHead:
        """The head with eval-mode batch-norm and the timestep gains folded into per-timestep scales and
        shifts (``FoldedHead``), for the fast reverse chain.

        Batch-norm with frozen statistics is affine, so softplus(BN(Linear(v) * gamma(t))) is
        softplus((W v) * scale[t] + shift[t]) with scale[t] = gamma(t) * w_bn / sqrt(var + eps) and
        shift[t] = (b * gamma(t) - mean) * w_bn / sqrt(var + eps) + b_bn.
        """
        gains = self.gain_table()  # (T, 3, d)
        scales, shifts = [], []
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms, strict=True)):
            k = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            scales.append(gains[:, i] * k)
            shifts.append((linear.bias * gains[:, i] - norm.running_mean) * k + norm.bias)
        c = self.out.out_features
        w1 = self.linears[0].weight.t()
        return FoldedHead(
            w1[:c].contiguous(),
            w1[c:].contiguous(),
            (self.linears[1].weight.t().contiguous(), self.linears[2].weight.t().contiguous()),
            torch.stack(scales, 1).contiguous(),
            torch.stack(shifts, 1).contiguous(),
            self.out.weight.t().contiguous(),
            self.out.bias.clone(),
        )

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
            h = softplus(norm(linear(h) * gamma[:, i]))
            if i == 0:
                h = h * gate
        return self.out(h)
