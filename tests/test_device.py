"""Device consistency without a GPU: the predict path run on a fake CUDA device (``tests/fake_cuda.py``:
tensors that say cuda:0 and compute on the CPU, every operation checked as CUDA kernels check their inputs),
so a tensor made on the wrong device fails here, and the numbers must be exactly the CPU's."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from diffmic.chain import denoise_steps
from diffmic.diffusion import make_sampler
from diffmic.explain import _DenoiserY0
from diffmic.lean import fold, lean_chain
from diffmic.ood_fit import fit_check
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from tests.fake_cuda import CUDA, DeviceMismatch, FakeCuda, FakeCudaTensor
from tests.helpers import random_image, tiny_model
from tests.test_lean import trained_like

SAMPLERS = [("ddpm", None, 0.0), ("ddim", 12, 1.0), ("ddim", 12, 0.0)]


def on_cpu(x):
    """A result read back to the host (what a caller on a GPU machine does)."""
    return x.cpu() if isinstance(x, torch.Tensor) else x


def model_pair(num_classes: int = 3, **overrides):
    """The same tiny model twice: one on the CPU, one to be moved to the fake device."""
    model = trained_like(tiny_model(num_classes, **overrides))
    return model, copy.deepcopy(model)


# ---------------------------------------------------------------- the fake device itself
def test_the_fake_device_refuses_what_a_gpu_refuses():
    with FakeCuda():
        gpu, cpu = torch.randn(3, 2, device="cuda"), torch.randn(3, 2)
        mask = torch.tensor([True, False, True])
        layer = torch.nn.Linear(2, 2).to(CUDA)
        refused = {
            "add": lambda: gpu + cpu,
            "cat": lambda: torch.cat([gpu, cpu]),
            "matmul": lambda: gpu @ cpu.T,
            "out= on the CPU": lambda: torch.add(gpu, gpu, out=torch.empty(3, 2)),
            "index_put_ of cuda values into a CPU tensor": lambda: cpu.index_put_((mask,), gpu[:2]),
            "CPU values into a cuda tensor": lambda: gpu.index_put_((mask,), cpu[:2]),
            "cuda indices into a CPU tensor": lambda: cpu[mask.to(CUDA)],
            "a cuda draw from the CPU generator": lambda: torch.randn(
                2, device=CUDA, generator=torch.Generator()
            ),
            "a module on cuda, its input on the CPU": lambda: layer(cpu),
        }
        for name, op in refused.items():
            with pytest.raises(DeviceMismatch):
                op()
                pytest.fail(f"{name} was allowed")
        for to_numpy in (gpu.numpy, lambda: np.asarray(gpu)):
            with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
                to_numpy()
        # what a GPU accepts: a CPU scalar, CPU indices, copies across, a tensor built from data
        assert isinstance(gpu * torch.tensor(2.0) + 1, FakeCudaTensor)
        assert torch.equal(on_cpu(gpu[mask]), on_cpu(gpu)[mask])
        columns = torch.tensor([0, 1, 0])
        assert torch.equal(
            on_cpu(gpu[torch.arange(3), columns.to(CUDA)]), on_cpu(gpu)[torch.arange(3), columns]
        )
        assert torch.equal(cpu.copy_(gpu), gpu.cpu()) and layer(gpu).device == CUDA
        assert torch.tensor([1.0, 2.0], device=CUDA).device == CUDA and gpu.new_zeros(2).device == CUDA
        assert gpu.sum().item() == pytest.approx(float(on_cpu(gpu).sum())) and len(gpu.tolist()) == 3


# ---------------------------------------------------------------- the chains
@pytest.mark.parametrize(("sampler", "steps", "eta"), SAMPLERS)
def test_lean_chain_on_the_fake_device_gives_the_cpu_numbers(sampler, steps, eta):
    cpu_model, gpu_model = model_pair(4)
    prior = torch.softmax(torch.randn(2, 4, generator=torch.Generator().manual_seed(2)), -1)
    gates = torch.rand(2 * 3, cpu_model.config.feature_dim, generator=torch.Generator().manual_seed(3)) * 2

    def chain(model, gates, prior):
        s = make_sampler(sampler, model.diffusion, steps, eta)
        states = lean_chain(fold(model.denoiser), gates, prior, s, 3, torch.Generator().manual_seed(5), 0.7)
        return [(st.t, on_cpu(st.sample).clone()) for st in states]

    expected = chain(cpu_model, gates, prior)
    with FakeCuda():
        gpu_model.to(CUDA)
        got = chain(gpu_model, gates.to(CUDA), prior.to(CUDA))
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))


@pytest.mark.parametrize(("sampler", "steps", "eta"), SAMPLERS[:2])
def test_plain_chain_on_the_fake_device_gives_the_cpu_numbers(sampler, steps, eta):
    cpu_model, gpu_model = model_pair(3)
    prior = torch.softmax(torch.randn(1, 3, generator=torch.Generator().manual_seed(2)), -1)
    features = torch.randn(1, cpu_model.condition_dim, generator=torch.Generator().manual_seed(4))

    def chain(model, features, prior):
        with torch.inference_mode():
            gates = model.denoiser.gate(features).repeat_interleave(2, 0)
        s = make_sampler(sampler, model.diffusion, steps, eta)
        eps = lambda y, t, p: model.eps(gates, y, t, p)  # noqa: E731
        return [
            on_cpu(st.probs).clone()
            for st in denoise_steps(eps, prior, s, 2, torch.Generator().manual_seed(1))
        ]

    expected = chain(cpu_model, features, prior)
    with FakeCuda():
        gpu_model.to(CUDA)
        got = chain(gpu_model, features.to(CUDA), prior.to(CUDA))
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


# ---------------------------------------------------------------- the whole predict path
def with_distribution_check(model):
    """A fitted distribution check (statistics on the CPU, as loaded) and a threshold, so its path runs."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, model.ood_width)).astype(np.float32)
    model.ood_check = fit_check(features, rng.integers(0, model.config.num_classes, 40))
    model.config.ood_threshold = 1.0
    return model


def test_pipeline_on_the_fake_device_gives_the_cpu_answer():
    cpu_model, gpu_model = (with_distribution_check(m) for m in model_pair(3, temperature=0.8))
    image = random_image(96, seed=4)
    options = SamplingOptions(sampler="ddpm", samples=3, seed=2)

    def predict(pipe):
        """The streamed items and the answer, the distribution check, the batched path and explain.py's
        denoiser view (its forward pass: Grad-CAM's backward pass needs a real GPU)."""
        items = list(pipe.run(image, options))
        prepared = items[0]
        state, cond = pipe.classify_batch(prepared.x, options)
        with torch.no_grad():
            y0 = _DenoiserY0(pipe.model, cond.prior("fused"), 50)(prepared.x)
        return items, pipe.check_distribution(prepared), on_cpu(state.probs), on_cpu(y0)

    items, ood, probs, y0 = predict(DiffMICPipeline(cpu_model))
    with FakeCuda():
        gpu_model.to(CUDA)
        pipe = DiffMICPipeline(gpu_model)
        gpu_items, gpu_ood, gpu_probs, gpu_y0 = predict(pipe)
        assert (
            pipe.model.device == CUDA and gpu_items[0].x.device == CUDA and gpu_items[1].sample.device == CUDA
        )
    expected, got = items[-1], gpu_items[-1]
    a, b = got.to_json(), expected.to_json()
    a.pop("seconds"), b.pop("seconds")
    assert a == b and a["ood"]["available"] is True and gpu_ood == ood == expected.ood
    np.testing.assert_array_equal(got.sample_probs, expected.sample_probs)
    np.testing.assert_array_equal(got.saliency, expected.saliency)
    np.testing.assert_array_equal(got.trajectory.probs, expected.trajectory.probs)
    np.testing.assert_array_equal(got.rois.boxes, expected.rois.boxes)
    assert torch.equal(gpu_probs, probs) and torch.equal(gpu_y0, y0)


# ---------------------------------------------------------------- the app's handlers on a GPU
@pytest.fixture(scope="module")
def app_dirs(tmp_path_factory):
    from tests.test_app_support import make_app_dirs, make_dataset_zip

    root = tmp_path_factory.mktemp("gpu-app")
    settings = make_app_dirs(root, n_examples=2)
    return settings, str(sorted((settings.assets_dir / "fundus").glob("*.png"))[0]), make_dataset_zip(root, 1)


def app_answers(registry, settings, example, dataset) -> dict:
    """What the Diagnose (streamed run and API), Learn and Evaluate handlers give for one image and a zip."""
    from app.diagnose import Diagnosis
    from app.diagnose_frames import OUTPUTS
    from app.evaluation import Evaluation
    from app.learn import LEARN_OUTPUTS, Lessons

    final = dict(
        zip(OUTPUTS, list(Diagnosis(registry).run(example, "fundus", "DDPM", 100, 3, 1))[-1], strict=True)
    )
    predict = Diagnosis(registry).predict(example, "fundus", "ddim", 10, 2, 4)
    lesson = dict(zip(LEARN_OUTPUTS, Lessons(registry, settings).run("fundus", example), strict=True))
    metrics, _, table, _, error = Evaluation(registry).run(str(dataset), "fundus", "DDIM", 5, 2)
    for answer in (final["json"], predict):
        answer.pop("seconds")
    forward = lesson["lesson"].forward if lesson["lesson"] is not None else None
    return {
        "diagnose": final["json"],
        "predict": predict,
        "learn forward": (forward.mean.tolist(), forward.draws.tolist()) if forward is not None else None,
        "learn reverse": lesson["lesson"].reverse.labels.tolist() if lesson["lesson"] is not None else None,
        "learn notes": [lesson[n].split(" in ")[0] for n in ("forward_note", "sampler_note", "prior_note")],
        "learn error": lesson["error"]["visible"],
        "evaluate": (metrics, table["value"]),
        "evaluate error": error["visible"],
    }


def test_the_apps_handlers_on_a_gpu_give_the_cpu_answers(app_dirs, monkeypatch):
    from app.models import ModelRegistry

    settings, example, dataset = app_dirs
    expected = app_answers(ModelRegistry(settings), settings, example, dataset)
    assert (
        expected["diagnose"]["steps"] == 100
        and not expected["learn error"]
        and not expected["evaluate error"]
    )
    monkeypatch.setattr("app.models.model_device", lambda: "cuda")  # what app.gpu answers on a GPU
    with FakeCuda():
        # the fake device is a mode of this thread, which the batcher's workers do not share: the handlers
        # run unbatched here (test_batching runs a batch on the fake device)
        registry = ModelRegistry(dataclasses.replace(settings, batching=False))
        assert registry.get("fundus").pipe.model.device == CUDA
        got = app_answers(registry, settings, example, dataset)
    assert got == expected
