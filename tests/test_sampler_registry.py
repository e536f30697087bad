"""The sampler registry is the one place a sampler is defined: a sampler whose step is not affine (DDIM with
its y0 estimate projected onto the probability simplex), registered in this module only, runs through the
pipeline (in the generic loop, as it offers no affine steps), the command line and the Diagnose handler.

The fast path is what a sampler offers: an affine sampler taken through the generic loop gives the folded
chain's numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffmic import pipeline as pipeline_module
from diffmic.chain import DenoiseState
from diffmic.cli import main
from diffmic.ddpm_ddim import DDIMSampler
from diffmic.diffusion import SAMPLERS, make_sampler, sampler_class
from diffmic.options import SamplingOptions
from diffmic.pipeline import DiffMICPipeline
from diffmic.sampler import Sampler, StepOutput
from tests.helpers import random_image, tiny_model


def simplex_projection(y: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of each row onto the probability simplex (sort-based)."""
    u = y.sort(-1, descending=True).values
    k = torch.arange(1, y.shape[-1] + 1, dtype=y.dtype, device=y.device)
    css = u.cumsum(-1) - 1
    rho = (u - css / k > 0).sum(-1, keepdim=True)
    theta = css.gather(-1, rho - 1) / rho
    return (y - theta).clamp_min(0)


class SimplexDDIMSampler(Sampler):
    """Deterministic DDIM whose y0 estimate is projected onto the simplex at every step (not affine)."""

    name = "ddim-simplex"
    label = "DDIM (simplex)"
    help = "DDIM with the y0 estimate kept a probability vector"
    look_for = "**What to look for:** every run's estimate of the label stays a probability vector."
    default_steps = 20

    def step(self, model_output, t, sample, prior, generator=None) -> StepOutput:
        ab = self.diffusion.alphas_cumprod_list
        prev = self.previous_timestep(t)
        y0 = simplex_projection(self._y0(model_output, sample, prior, ab[t]))
        if prev < 0:
            return StepOutput(y0, y0)
        eps = (sample - (1 - math.sqrt(ab[t])) * prior - math.sqrt(ab[t]) * y0) / math.sqrt(1 - ab[t])
        return StepOutput(prior + math.sqrt(ab[prev]) * (y0 - prior) + math.sqrt(1 - ab[prev]) * eps, y0)


class GenericDDIMSampler(DDIMSampler):
    """DDIM that does not offer its affine steps: the pipeline runs it through ``step``."""

    name = "ddim-generic"
    label = "DDIM (generic loop)"
    affine = False


@pytest.fixture
def registered(monkeypatch):
    """The two samplers, registered here only (the registry is restored afterwards)."""
    for cls in (SimplexDDIMSampler, GenericDDIMSampler):
        monkeypatch.setitem(SAMPLERS, cls.name, cls)
    return SimplexDDIMSampler.name


def states(pipe: DiffMICPipeline, image, options: SamplingOptions) -> list[DenoiseState]:
    return [s for s in pipe.run(image, options) if isinstance(s, DenoiseState)]


def test_the_registry_defines_the_builtin_samplers_once():
    assert list(SAMPLERS) == ["ddpm", "ddim"]
    for cls in SAMPLERS.values():
        assert cls.affine and cls.label and cls.help and cls.look_for.startswith("**What to look for:**")
        assert sampler_class(cls.label) is sampler_class(cls.name.upper()) is cls
    assert SamplingOptions("DDIM").sampler == "ddim"
    with pytest.raises(ValueError, match="unknown sampler 'ddim-simplex'; use ddpm or ddim"):
        SamplingOptions("ddim-simplex")


def test_a_registered_non_affine_sampler_runs_in_the_pipelines_generic_loop(registered, monkeypatch):
    def no_fast_path(*args, **kwargs):
        raise AssertionError("the folded chain needs affine steps")

    monkeypatch.setattr(pipeline_module, "lean_chain", no_fast_path)
    model = tiny_model(4)
    pipe = DiffMICPipeline(model)
    options = SamplingOptions("DDIM (simplex)", steps=6, samples=3, seed=2)
    assert options.sampler == registered and not make_sampler(registered, model.diffusion).affine
    run = states(pipe, random_image(), options)
    assert [s.t for s in run] == make_sampler(registered, model.diffusion, 6).timesteps
    y0 = run[-1].sample  # (1, 3, 4): each chain's answer is a probability vector
    assert (y0 >= 0).all() and torch.allclose(y0.sum(-1), torch.ones(1, 3), atol=1e-5)
    assert not torch.allclose(run[0].sample[0, 0], run[0].sample[0, 1])  # the chains started apart
    # the same chain by hand: the unfolded denoiser and the sampler's own step
    prepared = pipe.prepare(random_image())
    sampler, gen = make_sampler(registered, model.diffusion, 6), torch.Generator().manual_seed(2)
    with torch.inference_mode():
        prior = prepared.conditioning.prior().repeat_interleave(3, 0)
        gates = model.denoiser.gate(prepared.conditioning.features).repeat_interleave(3, 0)
        y = sampler.init_sample(prior, gen)
        for t in sampler.timesteps:
            eps = model.denoiser(gates, y, torch.full((3,), t), prior)
            y = sampler.step(eps, t, y, prior, gen).prev_sample
    torch.testing.assert_close(y.view(1, 3, 4), y0, atol=1e-5, rtol=0)
    result = pipe(random_image(), options)
    assert result.options.sampler == registered and result.steps == 6


@pytest.mark.parametrize("steps", [None, 7])
def test_the_generic_loop_gives_the_folded_chains_numbers(registered, steps):
    pipe, image = DiffMICPipeline(tiny_model(3)), random_image(seed=1)
    fast = states(pipe, image, SamplingOptions("ddim", steps, samples=2, seed=3, eta=0.5))
    plain = states(pipe, image, SamplingOptions("ddim-generic", steps, samples=2, seed=3, eta=0.5))
    assert [s.t for s in fast] == [s.t for s in plain]
    torch.testing.assert_close(plain[-1].sample, fast[-1].sample, atol=1e-4, rtol=0)
    torch.testing.assert_close(plain[len(plain) // 2].probs, fast[len(fast) // 2].probs, atol=1e-4, rtol=0)


def test_the_cli_offers_and_runs_a_registered_sampler(registered, tmp_path, capsys):
    folder, path = tmp_path / "model", tmp_path / "image.png"
    tiny_model(3).save_pretrained(folder)
    Image.fromarray(random_image()).save(path)
    argv = ["predict", str(path), "--model", str(folder), "--sampler", registered, "--steps", "5"]
    assert main([*argv, "--samples", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sampler"] == registered and out["steps"] == 5 and out["samples"] == 2
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert SimplexDDIMSampler.help in " ".join(capsys.readouterr().out.split())


def test_the_cli_refuses_a_sampler_that_is_not_registered(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "x.png", "--model", str(tmp_path), "--sampler", "ddim-simplex"])
    assert exit_.value.code == 2 and "invalid choice: 'ddim-simplex'" in capsys.readouterr().err


def test_the_diagnose_handler_runs_a_registered_sampler(registered, tmp_path):
    from app.diagnose import Diagnosis
    from app.diagnose_frames import OUTPUTS
    from app.models import ModelRegistry
    from tests.test_app_support import make_app_dirs

    registry = ModelRegistry(make_app_dirs(tmp_path, n_examples=1))
    example = str(next((tmp_path / "assets" / "fundus").glob("*.png")))
    frames = [
        dict(zip(OUTPUTS, f, strict=True))
        for f in Diagnosis(registry).run(example, "fundus", "DDIM (simplex)", 5, 2, 0)
    ]
    last = frames[-1]
    assert last["json"]["sampler"] == registered and last["json"]["steps"] == 5
    shown = [f["look_for"] for f in frames if isinstance(f["look_for"], str) and f["look_for"]]
    assert shown and shown[0].startswith(SimplexDDIMSampler.look_for)  # the line under the trajectory
    assert np.isclose(sum(last["json"]["probabilities"].values()), 1.0, atol=1e-4)
