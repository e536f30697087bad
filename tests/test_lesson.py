"""What the Learn tab teaches (``diffmic.lesson``): the schedule, the forward process, the prior control, the
reverse chain in label space, and the choice of the lesson's image by the model's own prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffmic.chain import label_to_probs
from diffmic.lesson import (
    choose_lesson_image,
    forward_marginals,
    lesson_image,
    lesson_prior,
    one_hot,
    reverse_chain,
    schedule,
)
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.helpers import random_image, tiny_model


@pytest.fixture(scope="module")
def pipe() -> DiffMICPipeline:
    return DiffMICPipeline(tiny_model(4))


def test_the_schedule_is_the_diffusions_linear_one(pipe):
    sched = schedule(pipe.model.diffusion)
    T = pipe.config.timesteps
    beta = np.linspace(1e-4, 0.02, T)  # the config's linear schedule, written out
    alpha_bar = np.cumprod(1 - beta)
    assert sched.T == T and np.allclose(sched.beta, beta, rtol=1e-6)
    assert np.allclose(sched.alpha_bar, alpha_bar, rtol=1e-6)
    assert np.allclose(sched.prior_weight, 1 - np.sqrt(alpha_bar), atol=1e-9)
    assert np.allclose(sched.noise_sd, np.sqrt(1 - alpha_bar), atol=1e-9)
    assert np.all(np.diff(sched.prior_weight) > 0)  # the prior weighs more at every step


def test_the_forward_process_is_q_in_closed_form(pipe):
    sched = schedule(pipe.model.diffusion)
    y0, prior = one_hot(2, 4), np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    fwd = forward_marginals(pipe.model.diffusion, y0, prior, draws=6, seed=3)
    sab = np.sqrt(sched.alpha_bar)[:, None]
    assert np.allclose(fwd.mean, sab * y0 + (1 - sab) * prior, atol=1e-6)
    assert np.allclose(fwd.std, sched.noise_sd, atol=1e-6)
    noise = (fwd.draws - fwd.mean[:, None]) / fwd.std[:, None, None]
    assert np.allclose(noise, noise[-1], atol=1e-3)  # the same noise at every t: each draw moves smoothly
    again = forward_marginals(pipe.model.diffusion, y0, prior, draws=6, seed=3)
    assert np.array_equal(fwd.draws, again.draws)


def test_the_prior_control():
    own = np.array([0.7, 0.2, 0.1], np.float32)
    assert np.allclose(lesson_prior(own), own)
    assert np.allclose(lesson_prior(own, favour=2), [0, 0, 1])
    assert np.allclose(lesson_prior(own, towards_uniform=1.0), [1 / 3] * 3)
    assert np.allclose(lesson_prior(own, favour=1, towards_uniform=0.3), [0.1, 0.8, 0.1])
    assert np.allclose(lesson_prior(own, towards_uniform=0.5), 0.5 * own + 0.5 / 3)
    assert lesson_prior(own, 0, 0.25).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        lesson_prior(own, towards_uniform=1.5)


def test_the_reverse_chain_is_the_pipelines_chain_kept_in_label_space(pipe):
    image = random_image(seed=4)
    prepared = pipe.prepare(image)
    options = SamplingOptions(sampler="ddim", steps=12, samples=3, seed=5)
    chain = reverse_chain(pipe, prepared, options)
    out = pipe(prepared, options)
    assert chain.steps == 12 and chain.labels.shape == (12, 3, 4)
    assert np.array_equal(chain.trajectory.probs, out.trajectory.probs)
    assert np.array_equal(chain.trajectory.t, out.trajectory.t) and chain.trajectory.t[-1] == 0
    assert np.allclose(chain.prior, out.trajectory.prior)
    assert np.allclose(chain.probabilities, list(out.probabilities.values()), atol=1e-6)
    assert chain.answer == out.label_index
    probs = label_to_probs(torch.as_tensor(chain.labels), pipe.config.temperature).numpy()
    assert np.allclose(
        probs, chain.trajectory.probs, atol=1e-6
    )  # the labels are what the probabilities are of
    assert chain.index_at(0) == 11 and chain.trajectory.timesteps[chain.index_at(50)] == pytest.approx(
        50, abs=5
    )


def test_the_reverse_chain_is_centred_on_the_prior_it_is_given(pipe):
    prepared = pipe.prepare(random_image(seed=4))
    options = SamplingOptions(sampler="ddpm", steps=20, samples=2, seed=1)
    prior = np.array([0.0, 0.0, 1.0, 0.0], np.float32)
    chain = reverse_chain(pipe, prepared, options, prior)
    assert np.allclose(chain.prior, prior)
    states = list(pipe.denoise(prepared.conditioning.features, torch.as_tensor(prior)[None], options))
    assert np.array_equal(chain.labels[-1], states[-1].sample[0].numpy())
    own = reverse_chain(pipe, prepared, options)
    assert not np.allclose(own.labels, chain.labels)


def test_the_lesson_image_is_the_one_whose_prior_is_furthest_from_its_label():
    priors = [np.array([0.9, 0.1]), np.array([0.6, 0.4]), np.array([0.2, 0.8]), np.array([0.45, 0.55])]
    # true labels 0, 1, 1, 0: images 1 and 3 have priors favouring another class; 1 gives its truth less
    assert choose_lesson_image(priors, [0, 1, 1, 0]) == 1
    assert choose_lesson_image(priors, [0, 0, 1, 0]) == 3  # only image 3 is wrong
    assert choose_lesson_image(priors, [0, 0, 1, 1]) == 3  # none wrong: the least sure of its truth
    assert choose_lesson_image(priors, [None, 1, None, None]) == 1
    assert choose_lesson_image([None, priors[1]], [0, None]) is None


def test_the_lesson_image_is_chosen_by_the_models_own_prior(pipe, tmp_path):
    images = [random_image(seed=s) for s in range(6)]
    priors = [pipe.prepare(im).conditioning.prior("fused")[0].numpy() for im in images]
    labels = [int(np.argsort(p)[-2]) for p in priors]  # each image labelled its prior's second class
    labels[0] = int(np.argmax(priors[0]))  # except one, whose prior is right
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    chosen = lesson_image(pipe, [str(broken), *images], [0, *labels])
    wrong = [i for i in range(1, 6)]
    best = min(wrong, key=lambda i: priors[i][labels[i]])
    assert chosen is not None and chosen.differs and chosen.index == 1 + best
    assert chosen.label == labels[best] and np.allclose(chosen.prior, priors[best])
    assert int(np.argmax(chosen.prior)) != chosen.label
    right = lesson_image(pipe, images[:1], labels[:1])
    assert right.index == 0 and not right.differs
    assert lesson_image(pipe, [str(broken)], [0]) is None
