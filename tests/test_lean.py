"""The folded inference path gives the plain chain's numbers, on CPU (and on CUDA when present)."""

import numpy as np
import pytest
import torch

from diffmic.chain import denoise_steps
from diffmic.diffusion import make_sampler
from diffmic.lean import fold, lean_chain
from tests.helpers import tiny_model


def trained_like(model):
    """Give batch-norm and the gains non-trivial values, as training would."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for norm in model.denoiser.norms:
            norm.running_mean.copy_(torch.randn(norm.num_features, generator=gen) * 0.3)
            norm.running_var.copy_(torch.rand(norm.num_features, generator=gen) + 0.5)
            norm.weight.copy_(torch.rand(norm.num_features, generator=gen) + 0.5)
            norm.bias.copy_(torch.randn(norm.num_features, generator=gen) * 0.1)
        last = model.denoiser.gains.mlp[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=gen) * 0.05)
    return model.eval()


@pytest.mark.parametrize(
    ("sampler", "steps", "eta"), [("ddpm", None, 0.0), ("ddim", 20, 0.0), ("ddim", 15, 1.0)]
)
def test_lean_chain_equals_the_plain_chain(sampler, steps, eta):
    model = trained_like(tiny_model(4, num_crops=2))
    b, samples = 2, 3
    features = torch.randn(
        b, model.denoiser.project[0].in_features, generator=torch.Generator().manual_seed(1)
    )
    prior = torch.softmax(torch.randn(b, 4, generator=torch.Generator().manual_seed(2)), -1)
    with torch.inference_mode():
        gates = model.denoiser.gate(features).repeat_interleave(samples, 0)

    def eps_fn(y, t, p):
        return model.denoiser(gates, y, t, p)

    def chain(kind):
        s = make_sampler(sampler, model.diffusion, steps, eta)
        gen = torch.Generator().manual_seed(5)
        if kind == "plain":
            return list(denoise_steps(eps_fn, prior, s, samples, gen, 0.7))
        return list(lean_chain(fold(model.denoiser), gates, prior, s, samples, gen, 0.7))

    plain, lean = chain("plain"), chain("lean")
    assert len(plain) == len(lean) and [s.t for s in plain] == [s.t for s in lean]
    every = max(1, len(plain) // 10)
    for p, q in zip(plain[::every] + plain[-1:], lean[::every] + lean[-1:], strict=True):
        assert (p.probs - q.probs).abs().max().item() <= 1e-5
    assert (plain[-1].sample - lean[-1].sample).abs().max().item() < 1e-4
    assert lean[-1].is_last and lean[-1].sample.shape == (b, samples, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_lean_chain_on_cuda_equals_cpu():
    model = trained_like(tiny_model(3))
    prior = torch.full((1, 3), 1 / 3)
    gates = torch.ones(2, model.config.feature_dim)
    s = make_sampler("ddpm", model.diffusion)
    cpu = list(lean_chain(fold(model.denoiser), gates, prior, s, 2, torch.Generator().manual_seed(0)))[-1]
    model.cuda()
    gpu = list(
        lean_chain(fold(model.denoiser), gates.cuda(), prior.cuda(), s, 2, torch.Generator().manual_seed(0))
    )[-1]
    np.testing.assert_allclose(cpu.probs.numpy(), gpu.probs.cpu().numpy(), atol=1e-4)


@pytest.mark.parametrize("size", [100, 4096])  # below and above FAST_SOFTPLUS_MIN
def test_the_fast_softplus_equals_torchs_in_value_and_gradient(size):
    from diffmic.denoiser import FAST_SOFTPLUS_MIN, softplus, softplus_

    assert (size < FAST_SOFTPLUS_MIN) == (size == 100)
    spread = torch.randn(size - 3, generator=torch.Generator().manual_seed(0)) * 8
    x = torch.cat([spread, torch.tensor([0.0, -90.0, 90.0])]).requires_grad_(True)
    reference = torch.nn.functional.softplus(x.double()).detach()
    torch.testing.assert_close(softplus(x).double(), reference, rtol=0, atol=1e-6)
    (grad,) = torch.autograd.grad(softplus(x).sum(), x)
    torch.testing.assert_close(grad, torch.sigmoid(x.detach()), rtol=0, atol=1e-6)
    assert grad[-3] == 0.5  # at 0 exactly, not a one-sided derivative of max(x, 0)
    inplace = x.detach().clone()
    out = softplus_(inplace)
    assert out.data_ptr() == inplace.data_ptr()
    torch.testing.assert_close(out.double(), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rows", [2, 32])  # below and above the softplus threshold (256-wide layers)
def test_the_compiled_steps_run_without_python_and_equal_the_python_steps(rows):
    """The chain's steps run as TorchScript (no global lock: two batch workers in parallel); a silent fallback
    to Python would lose that, and the compiled steps must give the Python function's numbers."""
    from diffmic.lean import _reverse_steps, reverse_steps

    assert isinstance(_reverse_steps, torch.jit.ScriptFunction)
    gen = torch.Generator().manual_seed(0)
    steps, c, d = 30, 4, 256

    def r(*shape, s=1.0):
        return torch.randn(*shape, generator=gen) * s

    hidden = [r(d, d, s=0.05), r(d, d, s=0.05)]
    args = (r(rows, d), torch.rand(rows, d, generator=gen), r(steps, 3, d, s=0.3), r(steps, 3, d, s=0.3))
    args += (r(steps, c, d, s=0.3), hidden, r(d, c, s=0.05), r(steps, rows, c, s=0.01))
    a, cs = [0.99 - 0.001 * i for i in range(steps)], [0.02 + 0.001 * i for i in range(steps)]
    y0 = r(rows, c)
    expected, history = torch.empty(steps, rows, c), torch.empty(steps, rows, c)
    last_py = reverse_steps(y0.clone(), expected, 0, steps, *args, a, cs)
    y = _reverse_steps(y0.clone(), history, 0, 11, *args, a, cs)  # in two calls, as the chain makes them
    y = _reverse_steps(y, history, 11, steps, *args, a, cs)
    torch.testing.assert_close(history, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(y, last_py, rtol=0, atol=1e-6)
    assert history.abs().sum() > 0 and not torch.equal(history[0], history[-1])
