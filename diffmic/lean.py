"""The reverse chain at the floor: the denoiser head folded into per-timestep tables, the whole chain's
noise drawn up front, and every step a handful of fused tensor operations updated in place.

In eval mode a head layer is softplus(BN(Linear(v) * gamma(t))). Batch-norm with frozen statistics is
affine, so the layer is softplus((W v) * scale[t] + shift[t]) with

    scale[t] = gamma(t) * w_bn / sqrt(var + eps)
    shift[t] = (b * gamma(t) - mean) * w_bn / sqrt(var + eps) + b_bn,

tabulated once for all T timesteps by the denoiser itself (``ConditionalDenoiser.fold``, a
``FoldedHead``). The first layer reads [y_t, prior]; the prior's part, W_p prior, is the same at every
step and is computed once per chain. The sampler's update must be affine too: an ``AffineSampler`` offers
it (``AffineSampler.coefficients``): next = a y + b prior + c eps + sigma z. What is left per step is
three small matrix products and a few element-wise operations on a (rows, width) buffer. Any other
sampler, or a denoiser that cannot fold, runs in the generic loop (``DiffMICPipeline.denoise`` decides).

The steps run ``STEPS_PER_CALL`` at a time in ``reverse_steps``, compiled by TorchScript, whose
interpreter runs without Python's global lock: two batch workers (``diffmic.batching``) then run their
chains on both cores at once instead of taking turns for each small operation (measured: two concurrent
32-row chains 0.32 → 0.20 s, one alone 0.18 → 0.16 s, the same numbers). TorchScript is deprecated from
torch 2.14 but still shipped; where it is missing or fails, the same function runs as Python.
``torch.compile`` would need a C++ compiler on the server and seconds of compiling at start-up.

``lean_chain`` gives the same numbers as ``chain.denoise_steps`` driven by the unfolded head (to float
rounding; a test holds them within 1e-5) and draws its noise from the generator in the same order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence

import torch

from .chain import DenoiseState
from .denoiser import ConditionalDenoiser, FoldedHead, softplus_
from .noise import gaussian_cpu
from .sampler import AffineSampler

__all__ = ["FoldedHead", "fold", "lean_chain"]


STEPS_PER_CALL = 25  # steps per call of reverse_steps (a state is yielded for each, after the call)


def reverse_steps(
    y: torch.Tensor,
    history: torch.Tensor,
    start: int,
    stop: int,
    prior_part: torch.Tensor,
    gate: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    w_y: torch.Tensor,
    w_hidden: list[torch.Tensor],
    w_out: torch.Tensor,
    offset: torch.Tensor,
    a: list[float],
    c: list[float],
) -> torch.Tensor:
    """Steps ``start`` to ``stop`` of the folded chain, each written into ``history[i]``; returns the last y.
    Step i: h = softplus(y W_y[i] + prior_part * scale[i, 0] + shift[i, 0]) * gate, two hidden layers, then
    next = a[i] y + c[i] (h W_out) + offset[i]."""
    for i in range(start, stop):
        h = torch.addmm(torch.addcmul(shift[i, 0], prior_part, scale[i, 0]), y, w_y[i])
        h = softplus_(h).mul_(gate)
        h = softplus_(torch.addcmul(shift[i, 1], h @ w_hidden[0], scale[i, 1]))
        h = softplus_(torch.addcmul(shift[i, 2], h @ w_hidden[1], scale[i, 2]))
        torch.addmm(offset[i], h, w_out, alpha=c[i], out=history[i]).add_(y, alpha=a[i])
        y = history[i]
    return y


def _scripted(fn: Callable) -> Callable:
    """``fn`` compiled by TorchScript (run without the global lock), or ``fn`` itself where that fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated from torch 2.14, still supported
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - a torch without TorchScript: the same steps in Python
        return fn


_reverse_steps = _scripted(reverse_steps)


def fold(denoiser: ConditionalDenoiser) -> FoldedHead:
    """The denoiser's head folded into per-timestep tables (``ConditionalDenoiser.fold``)."""
    return denoiser.fold()


def _gaussian_rows(
    shape: torch.Size, dtype: torch.dtype, generator: torch.Generator | Sequence[torch.Generator] | None
) -> torch.Tensor:
    """Noise for every row from one generator, or from one generator per image (a batch of requests, each
    image's rows drawn from its own generator exactly as they would be alone)."""
    if generator is None or isinstance(generator, torch.Generator):
        return gaussian_cpu(shape, dtype, generator)
    rows = shape[0] // len(generator)
    return torch.cat([gaussian_cpu((rows, *shape[1:]), dtype, g) for g in generator])


@torch.inference_mode()
def lean_chain(
    head: FoldedHead,
    gate: torch.Tensor,
    prior: torch.Tensor,
    sampler: AffineSampler,
    samples: int = 1,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    temperature: float = 1.0,
) -> Iterator[DenoiseState]:
    """The chain from y_T ~ N(prior, I) for B images (``gate`` (B*N, d) rows, ``prior`` (B, C)); the noise
    from ``generator``, or from B generators, one per image (``diffmic.batching``).

    Yields a DenoiseState after every step; its ``sample`` is a view of a preallocated history, so
    reading only some of them (a UI streaming every few steps) costs nothing for the others.
    """
    b, c = prior.shape
    prior_rows = prior.repeat_interleave(samples, dim=0)
    steps = sampler.timesteps
    device = prior.device
    coef = torch.tensor([sampler.coefficients(t) for t in steps], dtype=prior.dtype)  # (S, 4): a, b, c, sigma
    a_list, c_list = coef[:, 0].tolist(), coef[:, 2].tolist()
    # the noise the plain chain draws, in its order: y_T, then one draw for each step that has noise; drawn
    # and laid out on the CPU (the generator's device), then moved to the chain's device in one copy
    noisy = coef[:, 3] > 0
    draws = [_gaussian_rows(prior_rows.shape, prior.dtype, generator) for _ in range(1 + int(noisy.sum()))]
    noise = torch.zeros(len(steps), *prior_rows.shape, dtype=prior.dtype)
    if len(draws) > 1:
        noise[noisy] = torch.stack(draws[1:])
    coef, noise = coef.to(device), noise.to(device)
    # every step's input-independent part, in one go: b * prior + sigma * z + c * b_out
    offset = coef[:, 1, None, None] * prior_rows + coef[:, 3, None, None] * noise
    offset += coef[:, 2, None, None] * head.b_out
    y = prior_rows + draws[0].to(device)
    prior_part = prior_rows @ head.w_prior  # (rows, d), the same at every step
    index = torch.as_tensor(steps, device=device)
    scale, shift = head.scale[index], head.shift[index]  # (S, 3, d)
    w_y = head.w_y * scale[:, 0, None, :]  # (S, C, d): the first layer's y weights, scaled per step
    history = torch.empty(len(steps), b * samples, c, dtype=y.dtype, device=y.device)
    args = (prior_part, gate, shift, scale, w_y, list(head.weights), head.w_out, offset, a_list, c_list)
    for start in range(0, len(steps), STEPS_PER_CALL):
        stop = min(start + STEPS_PER_CALL, len(steps))
        y = _reverse_steps(y, history, start, stop, *args)
        for i in range(start, stop):
            yield DenoiseState(i, len(steps), steps[i], history[i].view(b, samples, c), temperature)
