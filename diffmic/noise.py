"""The chains' noise: standard normal draws made on the CPU, so a seed gives the same numbers on every
device."""

from __future__ import annotations

import torch


def gaussian_cpu(shape: torch.Size, dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from a CPU ``generator``: every chain's draws, whatever its
    device, so a seed gives the same numbers everywhere (a generator belongs to one device)."""
    return torch.randn(shape, generator=generator, dtype=dtype, device="cpu")


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn on the CPU (``gaussian_cpu``) and moved to x's device."""
    return gaussian_cpu(x.shape, x.dtype, generator).to(x.device)
