"""The DiffMIC network: DCG geometry, encode-once denoising, prediction API, bad inputs."""

import numpy as np
import pytest
import torch

from diffmic.config import ConfigError
from diffmic.dcg import crop_boxes, normalised_saliency, select_rois
from diffmic.imageio import ImageLoadError
from tests.card_reference import card_reverse_chain, softmax
from tests.helpers import random_image, tiny_config, tiny_model


def test_rois_inside_image_and_ordered_by_saliency():
    gen = torch.Generator().manual_seed(0)
    saliency = torch.rand(5, 8, 8, generator=gen)
    boxes = select_rois(saliency, k=6, crop_size=20, image_size=128)
    assert boxes.shape == (5, 6, 4)
    assert (boxes[..., :2] >= 0).all() and (boxes[..., 2:] <= 128).all()
    assert ((boxes[..., 2] - boxes[..., 0]) == 20).all() and ((boxes[..., 3] - boxes[..., 1]) == 20).all()
    # the saliency at each box centre decreases from the first box to the last
    centre = ((boxes[..., :2] + boxes[..., 2:]) // 2) * 8 // 128
    at_centre = saliency[torch.arange(5)[:, None], centre[..., 1], centre[..., 0]]
    assert (at_centre[:, :-1] >= at_centre[:, 1:]).all()
    # the first box is centred on the arg-max cell
    top = saliency.flatten(1).argmax(1)
    assert torch.equal(centre[:, 0, 1] * 8 + centre[:, 0, 0], top)


def test_roi_on_a_single_hot_spot():
    saliency = torch.zeros(1, 7, 7)
    saliency[0, 5, 2] = 1.0
    box = select_rois(saliency, k=1, crop_size=32, image_size=224)[0, 0].tolist()
    assert box == [64, 160, 96, 192]  # cell (row 5, col 2) spans x 64-96, y 160-192


def test_crop_boxes_cuts_the_right_pixels():
    images = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    boxes = torch.tensor([[[2, 3, 6, 7]], [[10, 0, 14, 4]]])
    crops = crop_boxes(images, boxes, 4)
    assert crops.shape == (2, 1, 3, 4, 4)
    assert torch.equal(crops[0, 0], images[0, :, 3:7, 2:6])
    assert torch.equal(crops[1, 0], images[1, :, 0:4, 10:14])


def test_saliency_is_normalised():
    cam = torch.randn(2, 3, 5, 5)
    s = normalised_saliency(cam)
    assert s.shape == (2, 5, 5)
    assert torch.allclose(s.flatten(1).amin(1), torch.zeros(2)) and torch.allclose(
        s.flatten(1).amax(1), torch.ones(2)
    )


def test_guidance_outputs():
    model = tiny_model(4)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        g = model.dcg(x)
    assert g.global_logits.shape == g.local_logits.shape == (3, 4)
    assert g.cam.shape == (3, 4, 4, 4) and g.boxes.shape == (3, 3, 4)
    assert torch.allclose(g.attention.sum(-1), torch.ones(3))
    assert torch.allclose(g.fused_prior, (g.global_prior + g.local_prior) / 2)
    assert torch.allclose(g.fused_prior.sum(-1), torch.ones(3))


def test_predict_result_fields_and_determinism():
    model = tiny_model(3)
    img = random_image()
    a = model.predict(img, sampler="ddim", steps=10, samples=5, seed=3)
    b = model.predict(img, sampler="ddim", steps=10, samples=5, seed=3)
    assert a.to_json().keys() >= {"label", "probabilities", "prior", "uncertainty", "steps", "seconds"}
    assert a.label in model.config.class_names and a.steps == 10 and a.samples == 5
    assert sum(a.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(a.prior) == {"global", "local", "fused"}
    assert np.array_equal(a.sample_probs, b.sample_probs)
    c = model.predict(img, sampler="ddpm", samples=5, seed=4)
    assert c.steps == 100 and not np.array_equal(a.sample_probs, c.sample_probs)


def test_stream_follows_cards_chain_and_encoder_runs_once():
    model = tiny_model(3)
    calls = {"n": 0}
    hook = model.denoiser.encoder.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    prepared = model.prepare(random_image())
    states = list(model.stream(prepared, sampler="ddpm", samples=2, seed=1))
    hook.remove()
    assert calls["n"] == 1  # encode once, not once per step
    assert len(states) == model.config.timesteps

    # the same denoiser driven by CARD's chain written out in numpy, from the same seeded noise
    config, features = model.config, prepared.features.repeat_interleave(2, dim=0)

    def eps(y_t, t, p):
        with torch.inference_mode():
            out = model.denoiser(
                features, torch.from_numpy(y_t).float(), torch.from_numpy(t), torch.from_numpy(p).float()
            )
        return out.double().numpy()

    gen = torch.Generator().manual_seed(1)
    noise = [torch.randn(2, 3, generator=gen).double().numpy() for _ in range(config.timesteps)]
    prior = prepared.guidance.fused_prior.double().numpy().repeat(2, axis=0)
    y0 = card_reverse_chain(eps, prior, noise, config.beta_start, config.beta_end)[-1]
    np.testing.assert_allclose(states[-1].probs[0].numpy(), softmax(y0, config.temperature), atol=1e-5)


def test_batched_fast_path_matches_single_images():
    model = tiny_model(3)
    x, _ = model.preprocess([random_image(seed=1), random_image(seed=2)])
    state, _ = model.classify_batch(x, sampler="ddim", steps=5, samples=1, seed=0)
    assert state.probs.shape == (2, 1, 3)
    single = model.predict(random_image(seed=1), sampler="ddim", steps=5, samples=1, seed=0)
    assert np.allclose(state.probs[0, 0].numpy(), single.sample_probs[0], atol=1e-5)


def test_preprocessing_uses_config():
    model = tiny_model(3)
    x, pixels = model.preprocess(random_image(size=100))
    assert x.shape == (1, 3, 64, 64) and pixels.shape == (1, 64, 64, 3) and pixels.dtype == np.uint8
    expected = (pixels[0, 0, 0, 0] / 255 - model.config.mean[0]) / model.config.std[0]
    assert x[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64, 2), dtype=np.uint8), r"got shape \(64, 64, 2\)"),
        (np.zeros((8, 8, 3), dtype=np.uint8), "at least"),
    ],
)
def test_bad_images_give_clear_errors(image, message):
    with pytest.raises(ImageLoadError, match=message):
        tiny_model(3).predict(image)


def test_bad_arguments():
    model = tiny_model(3)
    with pytest.raises(ValueError, match="samples"):
        model.predict(random_image(), samples=0)
    with pytest.raises(ValueError, match="steps must be between"):
        model.predict(random_image(), sampler="ddim", steps=1000)
    with pytest.raises(ConfigError, match="at least 2 class"):
        tiny_config(1)
    with pytest.raises(ConfigError, match="num_crops"):
        tiny_config(num_crops=17)


def test_class_saliency_is_the_cam_of_the_chosen_class():
    model = tiny_model(4)
    with torch.no_grad():
        g = model.dcg(torch.randn(2, 3, 64, 64))
    s = g.class_saliency(torch.tensor([1, 3]))
    assert s.shape == (2, 4, 4) and float(s.min()) >= 0 and float(s.max()) <= 1
    for b, k in enumerate([1, 3]):
        assert int(s[b].argmax()) == int(g.cam[b, k].argmax())
    default = g.class_saliency()
    top = g.fused_prior.argmax(-1)
    assert torch.equal(default, g.class_saliency(top))


@pytest.mark.parametrize("network", ["global", "denoiser"])
@pytest.mark.parametrize(("method", "stage"), [("gradcam", -1), ("gradcam++", -2), ("layercam", -2)])
def test_grad_cam_variants_give_a_normalised_map(network, method, stage):
    from diffmic.explain import grad_cam

    model = tiny_model(3)
    x, _ = model.preprocess(random_image())
    heat = grad_cam(model, x, 1, network=network, method=method, stage=stage)
    assert heat.shape == (64, 64) and heat.min() >= 0 and heat.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="unknown CAM method"):
        grad_cam(model, x, 1, method="scorecam")
