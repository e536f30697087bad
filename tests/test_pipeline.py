"""The pipeline: one image in, one result out; encode once; the chain against CARD's; options; bad inputs."""

import numpy as np
import pytest
import torch

from diffmic.config import ConfigError
from diffmic.imageio import ImageLoadError
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.pipeline_outputs import DiffMICOutput, Prepared
from tests.card_reference import card_reverse_chain, softmax
from tests.helpers import random_image, tiny_config, tiny_model


def tiny_pipeline(num_classes: int = 3, **overrides) -> DiffMICPipeline:
    return DiffMICPipeline(tiny_model(num_classes, **overrides))


def test_run_yields_prepared_then_every_step_then_the_result():
    pipe = tiny_pipeline(3)
    items = list(pipe.run(random_image(), SamplingOptions(sampler="ddim", steps=7, samples=4, seed=2)))
    assert isinstance(items[0], Prepared) and isinstance(items[-1], DiffMICOutput)
    states = items[1:-1]
    assert [s.index for s in states] == list(range(7)) and states[-1].is_last
    out = items[-1]
    assert out.trajectory.steps_done == 7 and out.trajectory.probs.shape == (7, 4, 3)
    assert np.allclose(out.trajectory.probs[-1], states[-1].probs[0].numpy())
    assert np.allclose(out.sample_probs, states[-1].probs[0].numpy())


def test_result_fields_and_determinism():
    pipe = tiny_pipeline(3)
    img = random_image()
    opts = SamplingOptions(sampler="ddim", steps=10, samples=5, seed=3)
    a, b = pipe(img, opts), pipe(img, opts)
    assert a.to_json().keys() >= {
        "label",
        "probabilities",
        "prior",
        "uncertainty",
        "steps",
        "seconds",
        "rois",
    }
    assert a.label in pipe.config.class_names and a.steps == 10 and a.options.samples == 5
    assert sum(a.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(a.prior) == {"global", "local", "fused"}
    assert np.array_equal(a.sample_probs, b.sample_probs)
    c = pipe(img, opts.with_(sampler="ddpm", steps=None, seed=4))
    assert c.steps == 100 and not np.array_equal(a.sample_probs, c.sample_probs)


def test_result_carries_maps_and_rois_ranked_by_attention():
    pipe = tiny_pipeline(3)
    out = pipe(random_image(size=150), SamplingOptions(sampler="ddim", steps=3, samples=2), explain=True)
    assert out.pixels.shape == (128, 128, 3) and out.pixels.dtype == np.uint8
    assert out.saliency.shape == (4, 4) and 0 <= out.saliency.min() and out.saliency.max() <= 1
    assert out.gradcam is not None and out.gradcam.shape == (128, 128)
    rois = out.rois
    assert len(rois.crops) == 3 and rois.boxes.shape == (3, 4)
    assert (np.diff(rois.attention) <= 0).all() and rois.attention.sum() == pytest.approx(1, abs=1e-5)
    for (x0, y0, x1, y1), crop in zip(rois.boxes, rois.crops, strict=True):
        assert crop.shape == (32, 32, 3)  # full-resolution crops: 16 global-view px at local_scale 2
        assert np.array_equal(crop, out.pixels[y0:y1, x0:x1])


def test_the_image_is_encoded_once_and_the_chain_follows_cards():
    pipe = tiny_pipeline(3)
    model = pipe.model
    calls = {"global": 0, "local": 0}
    hooks = [
        model.dcg.cam_head.register_forward_hook(lambda *_: calls.__setitem__("global", calls["global"] + 1)),
        model.dcg.local_net.register_forward_hook(lambda *_: calls.__setitem__("local", calls["local"] + 1)),
    ]
    items = list(pipe.run(random_image(), SamplingOptions(sampler="ddpm", samples=2, seed=1)))
    for h in hooks:
        h.remove()
    assert calls == {"global": 1, "local": 1}  # once per image, not once per step
    prepared, states = items[0], items[1:-1]
    assert len(states) == model.config.timesteps

    # the same denoiser driven by CARD's chain written out in numpy, from the same seeded noise
    config = model.config
    with torch.inference_mode():
        gates = model.denoiser.gate(prepared.conditioning.features).repeat_interleave(2, dim=0)

    def eps(y_t, t, p):
        with torch.inference_mode():
            out = model.denoiser(
                gates, torch.from_numpy(y_t).float(), torch.from_numpy(t), torch.from_numpy(p).float()
            )
        return out.double().numpy()

    gen = torch.Generator().manual_seed(1)
    noise = [torch.randn(2, 3, generator=gen).double().numpy() for _ in range(config.timesteps)]
    prior = prepared.guidance.fused_prior.double().numpy().repeat(2, axis=0)
    y0 = card_reverse_chain(eps, prior, noise, config.beta_start, config.beta_end)[-1]
    np.testing.assert_allclose(states[-1].probs[0].numpy(), softmax(y0, config.temperature), atol=1e-5)


def test_batched_fast_path_matches_single_images():
    pipe = tiny_pipeline(3)
    x, _ = pipe.preprocess([random_image(seed=1), random_image(seed=2)])
    opts = SamplingOptions(sampler="ddim", steps=5, samples=1, seed=0)
    state, _ = pipe.classify_batch(x, opts)
    assert state.probs.shape == (2, 1, 3)
    single = pipe(random_image(seed=1), opts)
    assert np.allclose(state.probs[0, 0].numpy(), single.sample_probs[0], atol=1e-5)


def test_preprocessing_uses_config():
    pipe = tiny_pipeline(3)
    x, pixels = pipe.preprocess(random_image(size=100))
    assert x.shape == (1, 3, 128, 128) and pixels.shape == (1, 128, 128, 3) and pixels.dtype == np.uint8
    expected = (pixels[0, 0, 0, 0] / 255 - pipe.config.mean[0]) / pipe.config.std[0]
    assert x[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_priors_of_the_chain():
    pipe = tiny_pipeline(3)
    prepared = pipe.prepare(random_image())
    for which in ("global", "local", "fused"):
        out = pipe(prepared, SamplingOptions(sampler="ddim", steps=2, samples=1, prior=which))
        assert np.allclose(out.trajectory.prior, prepared.conditioning.prior(which)[0].numpy())
    assert np.allclose(pipe(prepared, SamplingOptions(steps=2, prior="none")).trajectory.prior, 0)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64, 2), dtype=np.uint8), r"got shape \(64, 64, 2\)"),
        (np.zeros((8, 8, 3), dtype=np.uint8), "at least"),
    ],
)
def test_bad_images_give_clear_errors(image, message):
    with pytest.raises(ImageLoadError, match=message):
        tiny_pipeline(3)(image)


def test_bad_options_and_configs():
    with pytest.raises(ValueError, match="samples"):
        SamplingOptions(samples=0)
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplingOptions(sampler="euler")
    with pytest.raises(ValueError, match="unknown prior"):
        SamplingOptions(prior="median")
    with pytest.raises(ValueError, match="steps must be between"):
        tiny_pipeline(3)(random_image(), SamplingOptions(sampler="ddim", steps=1000))
    with pytest.raises(ConfigError, match="at least 2 class"):
        tiny_config(1)
    with pytest.raises(ConfigError, match="num_crops"):
        tiny_config(num_crops=17)
    assert SamplingOptions(sampler=" DDIM ").sampler == "ddim"


@pytest.mark.parametrize("network", ["global", "denoiser"])
@pytest.mark.parametrize(("method", "stage"), [("gradcam", -1), ("gradcam++", -2), ("layercam", -2)])
def test_grad_cam_variants_give_a_normalised_map(network, method, stage):
    from diffmic.explain import grad_cam

    pipe = tiny_pipeline(3)
    x, _ = pipe.preprocess(random_image())
    heat = grad_cam(pipe.model, x, 1, network=network, method=method, stage=stage)
    assert heat.shape == (128, 128) and heat.min() >= 0 and heat.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="unknown CAM method"):
        grad_cam(pipe.model, x, 1, method="scorecam")
