"""Training optimises what README says: ||eps - eps_theta(fused)||^2 + w * [MMD(eps, eps_theta(global)) +
MMD(eps, eps_theta(local))], the MMD terms computed here from their definition (a Gaussian kernel on
pairwise differences, not the package's one-matrix-product form), and the gradient reaches the denoiser
through the passes conditioned on the global and on the local prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffmic.losses import antithetic_timesteps, diffusion_loss
from diffmic.model import DiffMIC
from tests.helpers import tiny_model

WEIGHT, BANDWIDTH = 0.5, 3.0


def reference_mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Biased squared MMD with k(a, b) = exp(-mean_d (a_d - b_d)^2 / bandwidth), written out."""

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).mean(-1) / bandwidth).mean()

    return k(x, x) + k(y, y) - 2 * k(x, y)


def reference_loss(
    model: DiffMIC, condition, y0, priors, generator: torch.Generator, per_image: int = 1
) -> dict[str, torch.Tensor]:
    """MSE, the two MMD terms and the total, each pass of the denoiser run on its own; ``generator`` in
    the state the loss's own started from (it draws t, then eps)."""
    cfg = model.config
    betas = np.linspace(cfg.beta_start, cfg.beta_end, cfg.timesteps)  # the linear schedule
    sab = torch.from_numpy(np.sqrt(np.cumprod(1 - betas))).float()
    condition, y0 = condition.repeat_interleave(per_image, 0), y0.repeat_interleave(per_image, 0)
    priors = [p.repeat_interleave(per_image, 0) for p in priors]
    t = antithetic_timesteps(len(y0), cfg.timesteps, generator)
    eps = torch.randn(y0.shape, generator=generator)
    a = sab[t][:, None]
    gate = model.denoiser.gate(condition)
    fused, glob, local = (
        model.denoiser(gate, a * y0 + (1 - a) * p + (1 - a**2).sqrt() * eps, t, p) for p in priors
    )
    parts = {
        "mse": ((fused - eps) ** 2).mean(),
        "mmd_global": reference_mmd(eps, glob, BANDWIDTH),
        "mmd_local": reference_mmd(eps, local, BANDWIDTH),
    }
    parts["total"] = parts["mse"] + WEIGHT * (parts["mmd_global"] + parts["mmd_local"])
    return parts


def batch(model: DiffMIC, n: int = 8):
    """Conditioning vectors, one-hot labels and three different prior means (leaves that take gradients)."""
    gen = torch.Generator().manual_seed(11)
    c = model.config.num_classes
    condition = torch.randn(n, model.condition_dim, generator=gen)
    y0 = torch.nn.functional.one_hot(torch.arange(n) % c, c).float()
    priors = [torch.softmax(2 * torch.randn(n, c, generator=gen), -1).requires_grad_() for _ in range(3)]
    return condition, y0, priors


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def grads(value: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    found = torch.autograd.grad(value, inputs, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, found, strict=True)]


@pytest.fixture(scope="module")
def model() -> DiffMIC:
    return tiny_model(3).eval()  # eval: batch-norm per row, so three separate passes equal one batched


@pytest.mark.parametrize("per_image", [1, 3])
def test_the_loss_is_mse_plus_the_weighted_mmd_of_both_granularities(model, per_image):
    condition, y0, priors = batch(model)
    parts = diffusion_loss(
        model.denoiser,
        condition,
        y0,
        tuple(priors),
        model.diffusion,
        WEIGHT,
        BANDWIDTH,
        seeded(5),
        timesteps_per_image=per_image,
    )
    ref = reference_loss(model, condition, y0, priors, seeded(5), per_image)
    assert min(ref["mmd_global"].item(), ref["mmd_local"].item()) > 1e-3  # the MMD terms matter here
    for name in ("mse", "mmd_global", "mmd_local", "total"):
        torch.testing.assert_close(getattr(parts, name), ref[name], atol=1e-5, rtol=1e-4, msg=name)
    assert parts.total.item() - parts.mse.item() > 1e-3

    params = list(model.denoiser.parameters())
    got, want = grads(parts.total, [*priors, *params]), grads(ref["total"], [*priors, *params])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-3)
    # the global and local priors enter only through the MMD passes: their gradients are that term's
    assert got[1].abs().max() > 1e-4 and got[2].abs().max() > 1e-4
    for term in ("mmd_global", "mmd_local"):  # each pass moves the denoiser's weights
        moved = torch.autograd.grad(ref[term], params, retain_graph=True, allow_unused=True)
        assert max(g.abs().max().item() for g in moved if g is not None) > 1e-4


def test_the_trainer_optimises_that_loss(tmp_path):
    from diffmic.data.datasets import ArrayDataset, Splits
    from diffmic.train import TrainConfig, Trainer
    from tests.helpers import tiny_config

    data = ArrayDataset(np.zeros((6, 128, 128, 3), np.uint8), np.arange(6) % 3)
    splits = Splits(data, data, None, ["c0", "c1", "c2"], False)
    cfg = tiny_config(3, mmd_weight=WEIGHT, mmd_bandwidth=BANDWIDTH)
    trainer = Trainer(cfg, TrainConfig(out_dir=str(tmp_path), timesteps_per_image=2), splits)
    model = trainer.model.eval()
    condition, y0, priors = batch(model)
    generator = torch.Generator()
    generator.set_state(trainer.generator.get_state())
    loss = trainer._diffusion_loss(condition, y0.argmax(-1), tuple(priors))
    ref = reference_loss(model, condition, y0, priors, generator, per_image=2)
    assert ref["total"].item() - ref["mse"].item() > 1e-3
    torch.testing.assert_close(loss, ref["total"], atol=1e-5, rtol=1e-4)
