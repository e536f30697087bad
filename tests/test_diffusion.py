"""The label-diffusion maths against closed forms and brute-force references."""

import math

import numpy as np
import pytest
import torch

from diffmic.chain import denoise, denoise_steps
from diffmic.ddpm_ddim import DDIMSampler, DDPMSampler
from diffmic.diffusion import LabelDiffusion, make_betas, make_sampler
from diffmic.losses import antithetic_timesteps, gaussian_kernel, mmd
from tests.card_reference import card_reverse_chain, softmax


def test_linear_schedule_closed_form():
    d = LabelDiffusion(1000, "linear", 1e-4, 0.02)
    assert d.betas[0].item() == pytest.approx(1e-4) and d.betas[-1].item() == pytest.approx(0.02)
    t = 437
    expected = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 999) for i in range(t + 1))
    assert d.alphas_cumprod[t].item() == pytest.approx(expected, rel=1e-10)
    assert torch.all(d.alphas_cumprod[1:] < d.alphas_cumprod[:-1])
    assert d.alphas_cumprod[-1].item() < 1e-4  # y_T is (almost exactly) N(prior, I)


def test_cosine_schedule_is_valid():
    b = make_betas("cosine", 200)
    assert b.shape == (200,) and torch.all((b > 0) & (b < 1))
    with pytest.raises(ValueError, match="unknown beta schedule"):
        make_betas("quadratic", 10)


def test_q_sample_marginals_match_closed_form():
    torch.manual_seed(0)
    d = LabelDiffusion(100)
    y0 = torch.tensor([[0.0, 1.0, 0.0]]).expand(200_000, 3)
    prior = torch.tensor([[0.2, 0.5, 0.3]]).expand(200_000, 3)
    for t in (0, 30, 99):
        yt = d.q_sample(y0, prior, torch.full((200_000,), t), torch.randn(200_000, 3, dtype=torch.float64))
        ab = d.alphas_cumprod[t]
        mean = ab.sqrt() * y0[0] + (1 - ab.sqrt()) * prior[0]
        assert torch.allclose(yt.mean(0), mean.to(yt.dtype), atol=0.01)
        assert torch.allclose(yt.var(0), (1 - ab).expand(3).to(yt.dtype), rtol=0.02, atol=1e-4)


def test_marginal_is_the_forward_process_in_closed_form():
    d = LabelDiffusion(1000)
    y0 = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    prior = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    t = torch.tensor([0, 999])  # the label itself at t = 0, the prior at t = T
    mean, std = d.marginal(y0, prior, t)
    ab = d.alphas_cumprod[t]  # float64
    assert mean.shape == (2, 3) and std.shape == (2, 1)
    expected = ab.sqrt()[:, None] * y0 + (1 - ab.sqrt())[:, None] * prior
    assert torch.allclose(mean, expected.float()) and torch.allclose(std[:, 0], (1 - ab).sqrt().float())
    assert torch.allclose(mean[0], y0[0], atol=0.01) and torch.allclose(mean[1], prior[1], atol=0.01)
    noise = torch.randn(2, 3)
    assert torch.allclose(d.q_sample(y0, prior, t, noise), mean + std * noise)


def _card_posterior(d: LabelDiffusion, y_t, y0, prior, t):
    """CARD's q(y_{t-1} | y_t, y0, prior) written out from the paper's formulas, with plain indexing."""
    a, ab, ab_prev = 1 - d.betas[t], d.alphas_cumprod[t], d.alphas_cumprod[t - 1]
    beta = d.betas[t]
    g0 = beta * ab_prev.sqrt() / (1 - ab)
    g1 = (1 - ab_prev) * a.sqrt() / (1 - ab)
    g2 = 1 + (ab.sqrt() - 1) * (a.sqrt() + ab_prev.sqrt()) / (1 - ab)
    return g0 * y0 + g1 * y_t + g2 * prior, (1 - ab_prev) / (1 - ab) * beta


def test_ddpm_step_matches_brute_force_reference():
    d = LabelDiffusion(50)
    s = DDPMSampler(d)
    gen = torch.Generator().manual_seed(3)
    y_t, eps, prior = (torch.randn(4, 3, dtype=torch.float64, generator=gen) for _ in range(3))
    t = 20
    y0 = (
        y_t - (1 - d.alphas_cumprod[t].sqrt()) * prior - (1 - d.alphas_cumprod[t]).sqrt() * eps
    ) / d.alphas_cumprod[t].sqrt()
    mean, var = _card_posterior(d, y_t, y0, prior, t)
    z = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    out = s.step(eps, t, y_t, prior, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(out.pred_original_sample, y0)
    assert torch.allclose(out.prev_sample, mean + var.sqrt() * z)
    last = s.step(eps, 0, y_t, prior)  # the final step returns the y0 estimate
    assert torch.allclose(last.prev_sample, last.pred_original_sample)


def test_ddpm_posterior_recovers_forward_process():
    """If the model predicts the true noise, the posterior mean is consistent with q(y_{t-1} | y0)."""
    d = LabelDiffusion(100)
    prior = torch.tensor([[0.1, 0.6, 0.3]], dtype=torch.float64).expand(100_000, 3)
    y0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(100_000, 3)
    gen = torch.Generator().manual_seed(0)
    t = 40
    eps = torch.randn(100_000, 3, dtype=torch.float64, generator=gen)
    y_t = d.q_sample(y0, prior, torch.full((100_000,), t), eps)
    prev = DDPMSampler(d).step(eps, t, y_t, prior, generator=gen).prev_sample
    ab_prev = d.alphas_cumprod[t - 1]
    expected_mean = ab_prev.sqrt() * y0[0] + (1 - ab_prev.sqrt()) * prior[0]
    assert torch.allclose(prev.mean(0), expected_mean, atol=0.01)
    assert torch.allclose(prev.var(0), (1 - ab_prev).expand(3), rtol=0.03)


def test_ddim_step_matches_brute_force_reference():
    d = LabelDiffusion(1000)
    s = DDIMSampler(d, eta=0.0)
    s.set_timesteps(10)
    assert s.timesteps[0] == 999 and s.timesteps[-1] == 0 and len(s.timesteps) == 10
    gen = torch.Generator().manual_seed(1)
    y_t, eps, prior = (torch.randn(2, 4, dtype=torch.float64, generator=gen) for _ in range(3))
    t, t_prev = s.timesteps[2], s.timesteps[3]
    ab, ab_prev = d.alphas_cumprod[t], d.alphas_cumprod[t_prev]
    y0 = (y_t - (1 - ab.sqrt()) * prior - (1 - ab).sqrt() * eps) / ab.sqrt()
    expected = prior + ab_prev.sqrt() * (y0 - prior) + (1 - ab_prev).sqrt() * eps
    assert torch.allclose(s.step(eps, t, y_t, prior).prev_sample, expected)


def test_ddim_eta_one_matches_ddpm_posterior_variance():
    d = LabelDiffusion(100)
    ddim, ddpm = DDIMSampler(d, eta=1.0), DDPMSampler(d)
    gen = torch.Generator().manual_seed(2)
    y_t, eps, prior = (torch.randn(50_000, 2, dtype=torch.float64, generator=gen) for _ in range(3))
    a = ddim.step(eps, 30, y_t, prior, generator=torch.Generator().manual_seed(5)).prev_sample
    b = ddpm.step(eps, 30, y_t, prior, generator=torch.Generator().manual_seed(6)).prev_sample
    assert torch.allclose(a.mean(0), b.mean(0), atol=0.02)
    assert torch.allclose(a.var(0), b.var(0), rtol=0.03)


def test_sampler_validation():
    d = LabelDiffusion(10)
    with pytest.raises(ValueError, match="between 1 and 10"):
        make_sampler("ddim", d, steps=11)
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", d)
    assert make_sampler("ddpm", d).timesteps == list(range(9, -1, -1))


def test_exact_noise_predictor_recovers_y0():
    """With an oracle noise predictor a deterministic DDIM chain lands exactly on y0."""
    d = LabelDiffusion(1000)
    y0 = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    prior = torch.tensor([[0.3, 0.4, 0.3], [0.5, 0.2, 0.3]], dtype=torch.float64)

    def oracle(y_t, t, p):
        ab = d.alphas_cumprod[t].unsqueeze(-1)
        y0_rows = y0.repeat_interleave(len(y_t) // len(y0), 0)
        return (y_t - ab.sqrt() * y0_rows - (1 - ab.sqrt()) * p) / (1 - ab).sqrt()

    final = denoise(
        oracle,
        prior,
        make_sampler("ddim", d, steps=20),
        samples=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.allclose(final.sample, y0[:, None, :].expand(2, 3, 3), atol=1e-8)
    assert final.probs.argmax(-1).tolist() == [[1, 1, 1], [0, 0, 0]]


def test_stream_and_fast_path_follow_cards_reverse_chain():
    """Every streamed state, and the fast path's answer, against CARD's chain written out in numpy."""
    T, samples, temperature = 100, 4, 0.5
    prior = torch.tensor([[0.2, 0.8], [0.7, 0.3]], dtype=torch.float64)

    def eps(y_t, t, p):  # an analytic noise predictor that depends on all three inputs
        return 0.1 * (y_t - p) + 0.05 * np.sin(t / 10)[:, None]

    def eps_fn(y_t, t, p):
        return torch.from_numpy(eps(y_t.numpy(), t.numpy(), p.numpy()))

    def run(chain):
        gen = torch.Generator().manual_seed(7)
        return chain(eps_fn, prior, make_sampler("ddpm", LabelDiffusion(T)), samples, gen, temperature)

    states, fast = list(run(denoise_steps)), run(denoise)
    # the chain's noise as the pipeline draws it from the seeded generator: y_T, then one per step t > 0
    gen = torch.Generator().manual_seed(7)
    noise = [torch.randn(2 * samples, 2, generator=gen, dtype=torch.float64).numpy() for _ in range(T)]
    expected = card_reverse_chain(eps, prior.numpy().repeat(samples, axis=0), noise)

    assert [(s.index, s.t, s.total) for s in states] == [(i, T - 1 - i, T) for i in range(T)]
    assert states[-1].is_last and not states[-2].is_last
    for state, y in zip(states, expected, strict=True):
        np.testing.assert_allclose(state.sample.reshape(-1, 2).numpy(), y, rtol=1e-9, atol=1e-9)
    y0 = expected[-1].reshape(2, samples, 2)
    np.testing.assert_allclose(fast.sample.numpy(), y0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast.probs.numpy(), softmax(y0, temperature), rtol=1e-9, atol=1e-12)


def test_mmd_zero_for_same_sample_and_grows_with_shift():
    x = torch.randn(256, 5, generator=torch.Generator().manual_seed(0))
    assert mmd(x, x).item() == pytest.approx(0.0, abs=1e-6)
    values = [mmd(x, x + shift).item() for shift in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[-1] > 0.1
    y = torch.randn(256, 5, generator=torch.Generator().manual_seed(1))
    assert mmd(x, y).item() < 0.05  # same distribution, different draws


def test_gaussian_kernel_matches_its_definition_and_gradient():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(30, 5, generator=g, dtype=torch.float64) * 2 + 1
    direct = torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).mean(-1) / 3.0)  # the definition
    fast = gaussian_kernel(a, b, 3.0)
    torch.testing.assert_close(fast, direct, rtol=1e-10, atol=1e-12)
    (grad_direct,) = torch.autograd.grad(direct.sum(), a)
    (grad_fast,) = torch.autograd.grad(fast.sum(), a)
    torch.testing.assert_close(grad_fast, grad_direct, rtol=1e-8, atol=1e-10)
    assert torch.allclose(gaussian_kernel(a, a, 3.0).diagonal(), torch.ones(40, dtype=torch.float64))


def test_antithetic_timesteps_pair_up():
    t = antithetic_timesteps(8, 1000, torch.Generator().manual_seed(0))
    assert t.shape == (8,) and torch.equal(t[:4] + t[4:], torch.full((4,), 999))
    assert antithetic_timesteps(7, 10).shape == (7,)
