"""Documented behaviour that a mutation run (``benchmarks/mutations.py``) found untested: the pipeline's
saliency map is the answer's, the chain starts from the prior it is asked for and uses the denoiser's
current weights; DDIM's eta; predict_y0 inverts q_sample; the training timesteps are antithetic; the local
stage's loss; Grad-CAM's stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffmic.dcg import Guidance
from diffmic.diffusion import LabelDiffusion, make_sampler
from diffmic.explain import grad_cam
from diffmic.losses import antithetic_timesteps, local_loss
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.estimator_reference import expected_answer
from tests.helpers import random_image, tiny_model


def probabilities(mapping: dict[str, float]) -> np.ndarray:
    return np.array(list(mapping.values()))


def test_the_saliency_map_is_the_answers_class_evidence():
    pipe = DiffMICPipeline(tiny_model(3, seed=1, temperature=0.3))
    prepared = pipe.prepare(random_image(seed=2))
    g, contrast = prepared.guidance, pipe.config.saliency_contrast
    answers = set()
    for seed in range(12):
        out = pipe(prepared, SamplingOptions(sampler="ddim", steps=3, samples=2, seed=seed))
        expected = g.class_saliency(torch.tensor([out.label_index]), contrast)[0].numpy()
        np.testing.assert_allclose(out.saliency, expected)
        answers.add(out.label_index)
    assert answers - {0}, "no run answered another class than 0: the case cannot tell the maps apart"
    maps = [g.class_saliency(torch.tensor([c]), contrast)[0] for c in range(3)]
    assert all(not torch.allclose(maps[0], m) for m in maps[1:])


@pytest.mark.parametrize("prior", ["global", "local", "none"])
def test_the_chain_starts_from_the_prior_it_is_asked_for(prior):
    model = tiny_model(3, seed=1, temperature=0.3)
    with torch.no_grad():  # a global branch that favours class 2 and a local one class 0
        model.dcg.cam_head.bias.copy_(torch.tensor([-3.0, 0.0, 3.0]))
        model.dcg.local_head.bias.copy_(torch.tensor([3.0, 0.0, -3.0]))
    pipe = DiffMICPipeline(model)
    image = random_image(seed=4)
    options = SamplingOptions(sampler="ddim", steps=6, samples=3, seed=1, prior=prior)
    x = pipe.preprocess(image)[0]
    expected, _ = expected_answer(pipe.model, x, options)
    fused, _ = expected_answer(pipe.model, x, options.with_(prior="fused"))
    assert np.abs(expected - fused).max() > 1e-3  # 10x the tolerance: the priors give other answers
    np.testing.assert_allclose(probabilities(pipe(image, options).probabilities), expected[0], atol=1e-4)


def test_the_pipeline_answers_with_the_denoisers_current_weights():
    model = tiny_model(3, seed=1, temperature=0.3)
    pipe = DiffMICPipeline(model)
    image, options = random_image(seed=3), SamplingOptions(sampler="ddim", steps=5, samples=2, seed=0)
    before = probabilities(pipe(image, options).probabilities)
    with torch.no_grad():
        model.denoiser.out.bias += torch.tensor([1.5, -1.5, 0.0])  # e.g. a training step
    after = probabilities(pipe(image, options).probabilities)
    fresh = probabilities(DiffMICPipeline(model)(image, options).probabilities)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, fresh, atol=1e-6)


def test_ddim_eta_scales_the_noise_up_to_ddpms_posterior():
    """sigma_t = eta * sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)): at eta = 1 and all steps the
    DDPM posterior's standard deviation, at eta = 0 none."""
    diffusion = LabelDiffusion(timesteps=50)
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 50))
    for eta in (0.0, 0.5, 1.0):
        sampler = make_sampler("ddim", diffusion, eta=eta)
        for t in (49, 20, 1):
            beta = 1 - ab[t] / ab[t - 1]
            posterior_std = math.sqrt((1 - ab[t - 1]) / (1 - ab[t]) * beta)
            assert sampler.coefficients(t)[3] == pytest.approx(eta * posterior_std, rel=1e-6, abs=1e-12)


def test_predict_y0_inverts_q_sample():
    diffusion = LabelDiffusion(timesteps=100)
    gen = torch.Generator().manual_seed(0)
    y0 = F.one_hot(torch.arange(6) % 3, 3).double()
    prior = torch.softmax(torch.randn(6, 3, generator=gen, dtype=torch.float64), -1)
    eps = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 10, 40, 70, 98, 99])
    y_t = diffusion.q_sample(y0, prior, t, eps)
    torch.testing.assert_close(diffusion.predict_y0(y_t, eps, t, prior), y0)


def test_training_timesteps_are_antithetic():
    """Half the batch uniform in [0, T), the other half mirrored to T - 1 - t."""
    t = antithetic_timesteps(9, 100, torch.Generator().manual_seed(0))
    assert t.shape == (9,) and t.min() >= 0 and t.max() < 100
    assert torch.equal(t[5:], 99 - t[:4])
    draws = torch.cat([antithetic_timesteps(64, 100, torch.Generator().manual_seed(s)) for s in range(4)])
    assert len(set(draws.tolist())) > 50  # not a constant


def test_the_local_stage_loss_is_the_local_plus_the_fused_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    local, fused = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    labels = torch.tensor([0, 1, 2, 1, 0])
    guidance = Guidance(torch.zeros(5, 3), local, fused, *([None] * 6))

    def cross_entropy(logits: torch.Tensor) -> torch.Tensor:
        return -(logits - logits.exp().sum(-1, keepdim=True).log())[torch.arange(5), labels].mean()

    torch.testing.assert_close(local_loss(guidance, labels), cross_entropy(local) + cross_entropy(fused))


def test_grad_cam_weighs_the_stage_it_is_given_and_by_default_the_models():
    model = tiny_model(3, seed=1, cam_stage=-2)
    x = DiffMICPipeline(model).preprocess(random_image(seed=1))[0]
    earlier = grad_cam(model, x, 1, method="gradcam", stage=-2)
    last = grad_cam(model, x, 1, method="gradcam", stage=-1)
    assert np.abs(earlier - last).max() > 0.05
    np.testing.assert_allclose(grad_cam(model, x, 1, method="gradcam"), earlier)
